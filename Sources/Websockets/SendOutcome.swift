

/// What became of a frame handed to `WebServer.send`.
public enum SendOutcome: Sendable, Equatable {
    /// Accepted: queued until the socket is writable.
    case queued
    /// The connection's queue would exceed `maximumQueuedBytes`: it is being closed with 1008.
    case overLimit
    /// No such connection (already closed).
    case unknownConnection
}

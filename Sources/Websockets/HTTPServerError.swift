

/// A server that could not start.
public struct HTTPServerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "HTTP server: \(message)" }
}

public import RedisClient

/// Why an experiment step failed: what, where, and what to do about it.
public struct ExperimentError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The CSV file is unusable (file, line, column in the message).
        case csv
        /// A stream entry does not follow the wire format (entry id and field in the message).
        case stream
        /// An option or `--param` value is invalid.
        case parameter
        /// Redis refused, is unreachable, or is not ours to use as asked.
        case redis
        /// Training or prediction failed.
        case training
        /// Waited longer than allowed.
        case timeout
        /// Reading or writing a local file failed.
        case io
    }

    public var kind: Kind
    public var message: String
    /// A Redis failure that may pass (connection lost, server loading): worth retrying.
    public var isTransient = false

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    /// A Redis failure while doing `what`; transient when the client's error is.
    public static func redis(_ error: RedisError, _ what: String) -> ExperimentError {
        var failure = ExperimentError(.redis, "\(what): \(error)")
        failure.isTransient = error.isTransient
        return failure
    }

    public var description: String { message }
}

/// Why an experiment step failed: what was being done and where (`context`: file and line,
/// stream entry and field, key, task), the underlying error it wraps (`cause`, kept as a value),
/// and what to do about it (`hint`). Every module of the experiment half throws it.
public struct ExperimentError: Error, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The CSV file is unusable (file, line, column in the context).
        case csv
        /// A stream entry does not follow the wire format (entry id and field in the context).
        case stream
        /// An option, `--param` value or grid file value is invalid.
        case parameter
        /// Redis refused, is unreachable, or is not ours to use as asked.
        case redis
        /// Training or prediction failed.
        case training
        /// Waited longer than allowed.
        case timeout
        /// Reading or writing a local file, or starting a process, failed.
        case io
    }

    public var kind: Kind
    /// What failed and where, without the cause (`storing the rf result of run 1-0`).
    public var context: String
    /// The error this one wraps (a `RedisError`, a `SpawnError`, a decoding error…), nil when
    /// the failure starts here.
    public var cause: (any Error)?
    /// What to do about it, when the context does not say.
    public var hint: String?
    /// A failure that may pass (Redis connection lost, server loading, contention): worth
    /// retrying.
    public var isTransient: Bool
    /// The context says in its own words what the cause says (a grid file's line for a
    /// parameter the algorithm refused): the message then does not repeat the cause.
    public var contextTellsCause = false

    public init(_ kind: Kind, _ context: String, cause: (any Error)? = nil, hint: String? = nil, isTransient: Bool = false) {
        self.kind = kind
        self.context = context
        self.cause = cause
        self.hint = hint
        self.isTransient = isTransient
    }

    /// A failure told again in `context`'s words (where and what), keeping `cause` as its value.
    public static func rewording(_ cause: any Error, as kind: Kind, _ context: String) -> ExperimentError {
        var error = ExperimentError(kind, context, cause: cause)
        error.contextTellsCause = true
        return error
    }

    /// The whole text: context, cause and hint.
    public var message: String {
        var text = context
        if let cause, !contextTellsCause { text += ": \(cause)" }
        if let hint { text += "; \(hint)" }
        return text
    }

    public var description: String { message }

    /// The same failure with `hint` added to what it already says to do.
    public func hinting(_ more: String) -> ExperimentError {
        var copy = self
        copy.hint = hint.map { "\($0); \(more)" } ?? more
        return copy
    }
}

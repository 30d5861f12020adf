/// An error from the Redis client layer.
///
/// `kind` tells a lost connection from a server error reply from a protocol error, so callers
/// can decide whether to retry. For a server error reply, `serverCode` says which one (parsed
/// once from the reply's first word): match it by case, never by the message's text. `code`
/// keeps hiredis' own error code where there is one.
public struct RedisError: Error, Sendable, CustomStringConvertible {
    /// What went wrong, in the terms a caller acts on.
    public enum Kind: String, Sendable {
        /// The TCP/unix connection could not be established (nothing listening, DNS, refused).
        case connectionFailed
        /// The connection broke while a command was in flight or before it was sent.
        /// The command may or may not have been executed by the server.
        case connectionLost
        /// A command or connect did not complete within its timeout; the connection was dropped.
        case timeout
        /// AUTH was rejected (wrong user or password, or the ACL user is disabled).
        case authenticationFailed
        /// The server answered with an error reply; `serverCode` says which.
        case server
        /// The bytes on the wire were not valid RESP, or hiredis reported a protocol error.
        case `protocol`
        /// The reply had a different shape than the command promises.
        case unexpectedReply
        /// The configuration (URL, options) is invalid.
        case invalidConfiguration
        /// The client was closed by its owner.
        case closed
        /// `MULTI` was refused but commands queued after it ran one by one: their effects are
        /// in Redis, just not atomically. Retrying would apply them again.
        case notAtomic
        /// Fewer replicas than required acknowledged a write within the time allowed (`WAIT`):
        /// it is on the primary, but a failover now could lose it.
        case replicaAcknowledgement
        /// An optimistic transaction found its watched keys changed by another client on every
        /// attempt it was allowed: nothing was applied. The client's own verdict, not a reply.
        case transactionConflict
        /// The process is out of a system resource the client needs (file descriptors): nothing
        /// was sent. Retrying once some are free can succeed.
        case resourceUnavailable
        /// The client put a write off for a reason outside Redis, named in the message (a fact it
        /// needs from elsewhere could not be had): nothing was applied. Retry after a pause.
        case deferred
    }

    /// The category of the failure.
    public let kind: Kind
    /// Human-readable detail (the server's error text for `.server`).
    public let message: String
    /// For `.server`: which error reply it was (from the reply's first word); nil otherwise.
    public let serverCode: ServerCode?
    /// hiredis' `REDIS_ERR_*` code when the error came from hiredis, else nil.
    public var code: Int32?
    /// For `.connectionLost`/`.connectionFailed` while reconnecting: how long until the client
    /// tries to connect again.
    public var retryAfter: Duration?
    /// The command that failed, for `.server` errors.
    public var command: String?
    /// The error this one classifies further (a refused AUTH's server reply behind
    /// `.authenticationFailed`), nil when it starts here.
    public var cause: (any Error)?

    public init(kind: Kind, message: String, code: Int32? = nil, retryAfter: Duration? = nil, command: String? = nil) {
        self.kind = kind
        self.message = message
        self.serverCode = kind == .server ? ServerCode(errorReply: message) : nil
        self.code = code
        self.retryAfter = retryAfter
        self.command = command
    }

    /// True for failures no retry can mend: the URL or the credentials are wrong (a master name
    /// no sentinel knows, a refused password). A service stops at start on these.
    public var isConfigurationProblem: Bool {
        kind == .invalidConfiguration || kind == .authenticationFailed
    }

    /// True for failures where retrying the same command later can succeed.
    public var isTransient: Bool {
        switch kind {
        case .connectionFailed, .connectionLost, .timeout, .replicaAcknowledgement, .transactionConflict, .resourceUnavailable, .deferred:
            return true
        case .server:
            return serverCode?.isTransient ?? false
        case .authenticationFailed, .protocol, .unexpectedReply, .invalidConfiguration, .closed, .notAtomic:
            return false
        }
    }

    /// What an operator should do about it.
    public var hint: String {
        switch kind {
        case .connectionFailed: return "check that redis-server is running and the Redis URL's host and port are right"
        case .connectionLost: return "the client reconnects with back-off; retry the command once the server is back"
        case .timeout: return "the server did not answer in time: check its load, or raise the command timeout"
        case .authenticationFailed: return "check the user name and password in the Redis URL (redis://user:password@host:port)"
        case .server: return serverCode?.hint ?? "the server rejected the command; see its message"
        case .protocol: return "the peer does not speak RESP: is the URL pointing at a Redis server?"
        case .unexpectedReply: return "the server's reply did not match the command; is it a compatible Redis version?"
        case .invalidConfiguration: return "fix the Redis URL or option named in the message"
        case .closed: return "the client was closed; create a new one"
        case .notAtomic: return "allow MULTI and EXEC for this Redis user (ACL); do not retry what already ran"
        case .replicaAcknowledgement: return "check the replicas (INFO replication: connected_slaves, lag); the write is retried"
        case .transactionConflict: return "other clients kept writing the same keys; nothing was applied: retry after a pause"
        case .resourceUnavailable: return "the process is out of file descriptors: close some or raise the limit (ulimit -n), then retry"
        case .deferred: return "nothing was applied; the message says what was missing: retry after a pause"
        }
    }

    public var description: String {
        var text = "Redis \(kind.rawValue)" + (command.map { " on \($0)" } ?? "") + ": \(message)"
        if let code { text += " (hiredis code \(code))" }
        if let retryAfter { text += "; next connect attempt in \(retryAfter)" }
        return text + " — \(hint)"
    }
}

/// An error from the Redis client layer.
///
/// `kind` tells a lost connection from a server error reply from a protocol error, so callers
/// can decide whether to retry. `code` keeps hiredis' own error code where there is one.
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
        /// The server answered with an error reply (`WRONGTYPE`, `NOSCRIPT`, `BUSYGROUP`, …).
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
    }

    /// The category of the failure.
    public var kind: Kind
    /// Human-readable detail (the server's error text for `.server`).
    public var message: String
    /// hiredis' `REDIS_ERR_*` code when the error came from hiredis, else nil.
    public var code: Int32?
    /// For `.connectionLost`/`.connectionFailed` while reconnecting: how long until the client
    /// tries to connect again.
    public var retryAfter: Duration?
    /// The command that failed, for `.server` errors.
    public var command: String?

    public init(kind: Kind, message: String, code: Int32? = nil, retryAfter: Duration? = nil, command: String? = nil) {
        self.kind = kind
        self.message = message
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
        case .connectionFailed, .connectionLost, .timeout: return true
        case .server:
            // READONLY: a failover demoted the server; the client reconnects to the new primary.
            return message.hasPrefix("LOADING") || message.hasPrefix("BUSY ") || message.hasPrefix("TRYAGAIN") || message.hasPrefix("READONLY")
        case .replicaAcknowledgement: return true
        default: return false
        }
    }

    /// The first word of a server error reply (`WRONGTYPE`, `NOSCRIPT`, `BUSYGROUP`, …).
    public var serverErrorCode: String? {
        guard kind == .server else { return nil }
        return message.split(separator: " ", maxSplits: 1).first.map(String.init)
    }

    /// What an operator should do about it.
    public var hint: String {
        switch kind {
        case .connectionFailed: return "check that redis-server is running and the Redis URL's host and port are right"
        case .connectionLost: return "the client reconnects with back-off; retry the command once the server is back"
        case .timeout: return "the server did not answer in time: check its load, or raise the command timeout"
        case .authenticationFailed: return "check the user name and password in the Redis URL (redis://user:password@host:port)"
        case .server: return "the server rejected the command; see its message"
        case .protocol: return "the peer does not speak RESP: is the URL pointing at a Redis server?"
        case .unexpectedReply: return "the server's reply did not match the command; is it a compatible Redis version?"
        case .invalidConfiguration: return "fix the Redis URL or option named in the message"
        case .closed: return "the client was closed; create a new one"
        case .notAtomic: return "allow MULTI and EXEC for this Redis user (ACL); do not retry what already ran"
        case .replicaAcknowledgement: return "check the replicas (INFO replication: connected_slaves, lag); the write is retried"
        }
    }

    public var description: String {
        var text = "Redis \(kind.rawValue)" + (command.map { " on \($0)" } ?? "") + ": \(message)"
        if let code { text += " (hiredis code \(code))" }
        if let retryAfter { text += "; next connect attempt in \(retryAfter)" }
        return text + " — \(hint)"
    }
}

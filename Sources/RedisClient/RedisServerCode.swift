extension RedisError {
    /// Which error reply the server sent: the reply's first word, classified once.
    ///
    /// Redis starts every error reply with a code word (`-WRONGTYPE Operation against…`,
    /// `-ERR unknown command…`). Callers match these cases (`catch where error.serverCode ==
    /// .busyGroup`), never the message's text; a word not listed here is `.other(word)`.
    public enum ServerCode: Sendable, Hashable, CustomStringConvertible {
        /// `ERR`: the generic error (unknown command, wrong arguments, a script's `error()`).
        case err
        /// `WRONGTYPE`: the key holds another type than the command works on.
        case wrongType
        /// `NOSCRIPT`: `EVALSHA` of a script the server does not have (loaded again and retried
        /// by `RedisClient.run`).
        case noScript
        /// `BUSYGROUP`: `XGROUP CREATE` of a consumer group that exists.
        case busyGroup
        /// `NOGROUP`: the stream or its consumer group does not exist.
        case noGroup
        /// `UNBLOCKED`: a blocked command was ended by `CLIENT UNBLOCK … ERROR`, its stream or
        /// group was deleted while it waited, or its server turned replica (a failover).
        case unblocked
        /// `BUSY`: a script or function runs too long; the server answers nothing else until it ends.
        case busy
        /// `BUSYKEY`: `RESTORE`/`COPY` onto a key that exists.
        case busyKey
        /// `READONLY`: a write sent to a replica (a failover demoted the server).
        case readOnly
        /// `LOADING`: the server is loading its data set into memory.
        case loading
        /// `NOREPLICAS`: fewer good replicas than `min-replicas-to-write`.
        case noReplicas
        /// `MASTERDOWN`: a replica whose link to its primary is down (`replica-serve-stale-data no`).
        case masterDown
        /// `MOVED`: Cluster: the slot lives on another node.
        case moved
        /// `ASK`: Cluster: the slot is migrating; ask the named node once.
        case ask
        /// `TRYAGAIN`: Cluster: a multi-key command during resharding.
        case tryAgain
        /// `CLUSTERDOWN`: Cluster: the cluster cannot serve the slot.
        case clusterDown
        /// `CROSSSLOT`: Cluster: the keys of one command are in different slots.
        case crossSlot
        /// `NOAUTH`: the server wants `AUTH` first.
        case noAuth
        /// `WRONGPASS`: `AUTH` with a wrong user name or password.
        case wrongPass
        /// `NOPERM`: the ACL user may not run this command or touch this key.
        case noPerm
        /// `EXECABORT`: `EXEC` refused because a command was refused while queueing.
        case execAbort
        /// `MISCONF`: writes refused because the last background save failed.
        case misconfigured
        /// `OOM`: writes refused because `maxmemory` is reached.
        case outOfMemory
        /// Any other first word, as the server sent it.
        case other(String)

        /// Classifies the text of an error reply (`RedisReply.error`) by its first word.
        public init(errorReply message: String) {
            let word = message.prefix { $0 != " " }
            switch word {
            case "ERR": self = .err
            case "WRONGTYPE": self = .wrongType
            case "NOSCRIPT": self = .noScript
            case "BUSYGROUP": self = .busyGroup
            case "NOGROUP": self = .noGroup
            case "UNBLOCKED": self = .unblocked
            case "BUSY": self = .busy
            case "BUSYKEY": self = .busyKey
            case "READONLY": self = .readOnly
            case "LOADING": self = .loading
            case "NOREPLICAS": self = .noReplicas
            case "MASTERDOWN": self = .masterDown
            case "MOVED": self = .moved
            case "ASK": self = .ask
            case "TRYAGAIN": self = .tryAgain
            case "CLUSTERDOWN": self = .clusterDown
            case "CROSSSLOT": self = .crossSlot
            case "NOAUTH": self = .noAuth
            case "WRONGPASS": self = .wrongPass
            case "NOPERM": self = .noPerm
            case "EXECABORT": self = .execAbort
            case "MISCONF": self = .misconfigured
            case "OOM": self = .outOfMemory
            default: self = .other(String(word))
            }
        }

        /// The code word as Redis spells it.
        public var word: String {
            switch self {
            case .err: "ERR"
            case .wrongType: "WRONGTYPE"
            case .noScript: "NOSCRIPT"
            case .busyGroup: "BUSYGROUP"
            case .noGroup: "NOGROUP"
            case .unblocked: "UNBLOCKED"
            case .busy: "BUSY"
            case .busyKey: "BUSYKEY"
            case .readOnly: "READONLY"
            case .loading: "LOADING"
            case .noReplicas: "NOREPLICAS"
            case .masterDown: "MASTERDOWN"
            case .moved: "MOVED"
            case .ask: "ASK"
            case .tryAgain: "TRYAGAIN"
            case .clusterDown: "CLUSTERDOWN"
            case .crossSlot: "CROSSSLOT"
            case .noAuth: "NOAUTH"
            case .wrongPass: "WRONGPASS"
            case .noPerm: "NOPERM"
            case .execAbort: "EXECABORT"
            case .misconfigured: "MISCONF"
            case .outOfMemory: "OOM"
            case .other(let word): word
            }
        }

        public var description: String { word }

        /// Replies that say "not now" rather than "never": the same command can succeed later.
        /// (`READONLY`: the client reconnects, through the sentinels when configured so, and
        /// finds the new primary. `MOVED`: cluster clients follow it, a client pinned to a
        /// cluster slot reconnects to its new primary. `UNBLOCKED`: the wait can be asked again.)
        public var isTransient: Bool {
            switch self {
            case .loading, .busy, .tryAgain, .readOnly, .moved, .clusterDown, .unblocked: true
            default: false
            }
        }

        /// What to do about it, where the code says more than its message.
        var hint: String? {
            switch self {
            case .readOnly: "the server is a replica now (a failover?): the client reconnects to the primary; retry"
            case .loading: "the server is loading its data set: retry in a moment"
            case .busy: "a script runs too long: wait for it, or SCRIPT KILL / FUNCTION KILL it"
            case .noAuth, .wrongPass: "check the user name and password in the Redis URL"
            case .noPerm: "grant this ACL user the command and keys it needs (ACL SETUSER)"
            case .misconfigured: "the server cannot save its data: check its disk and log (or stop-writes-on-bgsave-error)"
            case .outOfMemory: "the server reached maxmemory: free memory, raise maxmemory or set an eviction policy"
            case .noReplicas: "fewer replicas than min-replicas-to-write are connected: check the replicas"
            case .moved: "the slot is served by another node now: cluster clients follow it and retry; a client of one server must be pointed at a standalone or Sentinel-managed primary"
            case .ask, .crossSlot, .clusterDown, .tryAgain: "a cluster state a client of one server cannot follow: use a redis-cluster:// URL, or point it at a standalone or Sentinel-managed primary"
            default: nil
            }
        }
    }
}

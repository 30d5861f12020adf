import CHiredis
import Durations
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// One blocking hiredis connection.
///
/// Thread-safety: **not** `Sendable`. A connection must be used from one thread at a time;
/// `RedisClient` confines each one to its own serial queue and `RedisSubscriber` to its own
/// thread. The `redisContext` is freed in `deinit` and lent out only inside `withContextPointer`.
public final class RedisConnection {
    private let context: UnsafeMutablePointer<redisContext>
    /// Scratch space for argv pointers, reused across commands (grown on demand).
    private var argv: UnsafeMutablePointer<UnsafePointer<CChar>?>
    private var argvCapacity: Int

    /// The server this connection reached (for a Sentinel endpoint, the primary the sentinels
    /// named), for logs.
    public let server: String
    /// Unique in the process: tells one connection from the next (`WAIT` counts the writes of
    /// one connection, so it must be asked on the one that wrote).
    public let serial: UInt64
    private static let serials = Atomic<UInt64>(0)

    /// Connects, sets the command timeout, authenticates and selects the database. For a
    /// Sentinel endpoint the sentinels are asked for the primary first, and the server is
    /// checked with `ROLE` to be one (a replica is refused: writes must never go to one).
    public init(configuration: RedisConfiguration) throws(RedisError) {
        let connectTimeout = timeval(configuration.connectTimeout)
        let made: UnsafeMutablePointer<redisContext>?
        var target = configuration.description
        switch configuration.endpoint {
        case .tcp(let host, let port):
            made = redisConnectWithTimeout(host, Int32(port), connectTimeout)
        case .unix(let path):
            made = redisConnectUnixWithTimeout(path, connectTimeout)
        case .sentinel(let sentinels):
            let primary = try Self.primary(of: sentinels, timeout: configuration.connectTimeout)
            target = "\(primary), primary of '\(sentinels.master)'"
            made = redisConnectWithTimeout(primary.host, Int32(primary.port), connectTimeout)
        case .clusterSlot(let seeds, let key):
            let primary = try Self.primary(ofSlotOf: key, seeds: seeds, configuration: configuration)
            target = "\(primary), primary of slot \(HashSlot.of(key))"
            made = redisConnectWithTimeout(primary.host, Int32(primary.port), connectTimeout)
        case .cluster:
            throw RedisError(kind: .invalidConfiguration, message: "\(configuration) names a Redis Cluster, but this connects to one server: use redis:// or redis-sentinel:// here (cluster mode goes through RedisClusterClient, where the product supports it)")
        }
        server = target
        serial = Self.serials.add(1, ordering: .relaxed).newValue
        guard let made else {
            throw RedisError(kind: .connectionFailed, message: "cannot allocate a hiredis context for \(target)")
        }
        if made.pointee.err != 0 {
            let error = Self.contextError(made, connecting: true, target: target)
            redisFree(made)
            throw error
        }
        context = made
        // Close-on-exec: a child process started later must not keep this connection open.
        _ = fcntl(made.pointee.fd, F_SETFD, fcntl(made.pointee.fd, F_GETFD) | FD_CLOEXEC)
        argvCapacity = 16
        argv = .allocate(capacity: argvCapacity)
        redisSetTimeout(context, timeval(configuration.commandTimeout))
        if case .tcp = configuration.endpoint {
            redisEnableKeepAlive(context)
        }

        if let password = configuration.password {
            do {
                try send(.auth(username: configuration.username, password: password))
            } catch where error.kind == .server {
                var refused = RedisError(kind: .authenticationFailed, message: "\(configuration): \(error.message)")
                refused.cause = error
                throw refused
            }
        }
        if configuration.database != 0 {
            do {
                try send(.select(configuration.database))
            } catch where error.kind == .server {
                var refused = RedisError(kind: .invalidConfiguration, message: "SELECT \(configuration.database) on \(configuration): \(error.message)")
                refused.cause = error
                throw refused
            }
        }
        if case .sentinel = configuration.endpoint {
            // The sentinels' view can lag a failover by a moment: a server that is not (or no
            // longer) the primary is refused, and the caller's back-off asks again.
            let role: String
            do {
                role = try send(.role())
            } catch where error.kind == .server {
                // Not allowed to ask (an ACL without ROLE): the sentinels' word has to do.
                role = "master"
            }
            if role != "master" {
                throw RedisError(kind: .connectionFailed, message: "\(target) is a \(role == "slave" ? "replica" : role), not the primary (a failover in progress?); asking the sentinels again")
            }
        }
    }

    /// Asks the sentinels, in order, for the primary of `sentinels.master`: the first address one
    /// names. A master name that every reachable sentinel says it does not know is a
    /// configuration error; no sentinel reachable is a connection failure (retried).
    static func primary(of sentinels: RedisConfiguration.Sentinels, timeout: Duration) throws(RedisError) -> RedisConfiguration.Sentinels.Address {
        var failures: [String] = []
        var unknownTo: [String] = []
        for address in sentinels.addresses {
            let sentinel = RedisConfiguration(endpoint: .tcp(host: address.host, port: address.port), username: sentinels.username, password: sentinels.password,
                                              connectTimeout: timeout, commandTimeout: timeout)
            do {
                let connection = try RedisConnection(configuration: sentinel)
                if let primary = try connection.send(.sentinelPrimaryAddress(master: sentinels.master)) { return primary }
                unknownTo.append(address.description)
            } catch {
                failures.append("\(address): \(error.message)")
            }
        }
        if failures.isEmpty, !unknownTo.isEmpty {
            throw RedisError(kind: .invalidConfiguration, message: "no sentinel knows a master named '\(sentinels.master)' (asked \(unknownTo.joined(separator: ", "))); check the name after the last '/' of the Redis URL against `sentinel monitor` in the sentinels' configuration")
        }
        let unknown = unknownTo.isEmpty ? "" : "; '\(sentinels.master)' unknown to \(unknownTo.joined(separator: ", "))"
        throw RedisError(kind: .connectionFailed, message: "no sentinel named a primary for '\(sentinels.master)': \(failures.joined(separator: "; "))\(unknown)")
    }

    /// The primary serving `key`'s slot, from the first seed that gives a slot map (`CLUSTER
    /// SHARDS`, or `CLUSTER SLOTS` from an older server).
    static func primary(ofSlotOf key: String, seeds: [RedisConfiguration.Address], configuration: RedisConfiguration) throws(RedisError) -> RedisConfiguration.Address {
        let slot = HashSlot.of(key)
        var failures: [String] = []
        for seed in seeds {
            var node = configuration
            node.endpoint = .tcp(host: seed.host, port: seed.port)
            node.database = 0
            do {
                let map = try ClusterSlotMap.read(from: try RedisConnection(configuration: node))
                if let primary = map.primary(forSlot: slot) { return primary }
                failures.append("\(seed): no primary serves slot \(slot)")
            } catch {
                if let stop = ClusterSlotMap.stopAsking(after: error, from: seed) { throw stop }
                failures.append("\(seed): \(error.message)")
            }
        }
        throw RedisError(kind: .connectionFailed, message: "no cluster node named the primary of slot \(slot) (\(failures.joined(separator: "; ")))", command: "CLUSTER SHARDS")
    }

    deinit {
        redisFree(context)
        argv.deallocate()
    }

    /// Lends the hiredis context for the duration of `body`.
    func withContextPointer<R, E: Error>(_ body: (UnsafeMutablePointer<redisContext>) throws(E) -> R) throws(E) -> R {
        try body(context)
    }

    /// The socket, for callers that wait on it with `poll(2)`.
    public var fileDescriptor: Int32 { context.pointee.fd }

    /// Sends one command and waits for its reply. Error replies come back as `.error`;
    /// only transport failures throw.
    public func send(_ arguments: RedisArguments) throws(RedisError) -> RedisReply {
        try append(arguments)
        return try readReply()
    }

    /// Sends one typed command and decodes its reply; an error reply throws `.server`.
    @discardableResult
    public func send<Value>(_ command: RedisCommand<Value>) throws(RedisError) -> Value {
        try command.value(from: send(command.arguments))
    }

    /// Sends all commands in one write and reads their replies in order: one round trip.
    public func pipeline(_ commands: [RedisArguments]) throws(RedisError) -> [RedisReply] {
        for command in commands { try append(command) }
        var replies: [RedisReply] = []
        replies.reserveCapacity(commands.count)
        for _ in commands { replies.append(try readReply()) }
        return replies
    }

    /// Queues one command in hiredis' output buffer without sending it.
    public func append(_ arguments: RedisArguments) throws(RedisError) {
        let count = arguments.count
        if count > argvCapacity {
            argv.deallocate()
            argvCapacity = max(count, argvCapacity * 2)
            argv = .allocate(capacity: argvCapacity)
        }
        let status: Int32 = arguments.storage.withUnsafeBufferPointer { bytes in
            arguments.lengths.withUnsafeBufferPointer { lengths in
                let base = UnsafeRawPointer(bytes.baseAddress ?? UnsafePointer(bitPattern: 1)!)
                var offset = 0
                for index in 0..<count {
                    argv[index] = (base + offset).assumingMemoryBound(to: CChar.self)
                    offset += lengths[index]
                }
                return redisAppendCommandArgv(context, Int32(count), argv, lengths.baseAddress)
            }
        }
        if status != REDIS_OK { throw Self.contextError(context) }
    }

    /// Writes everything queued by `append` (blocking until the kernel took it).
    public func flush() throws(RedisError) {
        var done: Int32 = 0
        while done == 0 {
            if redisBufferWrite(context, &done) != REDIS_OK { throw Self.contextError(context) }
        }
    }

    /// Blocks until the next reply has arrived (flushing pending output first).
    public func readReply() throws(RedisError) -> RedisReply {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
            throw Self.contextError(context)
        }
        defer { freeReplyObject(raw) }
        return RedisReply(copying: raw.assumingMemoryBound(to: redisReply.self))
    }

    /// Reads whatever the socket has now (one `read(2)`); use after `poll(2)` said readable.
    public func readAvailable() throws(RedisError) {
        if redisBufferRead(context) != REDIS_OK { throw Self.contextError(context) }
    }

    /// Returns the next complete reply already in the input buffer, without touching the socket.
    public func bufferedReply() throws(RedisError) -> RedisReply? {
        var raw: UnsafeMutableRawPointer?
        guard redisGetReplyFromReader(context, &raw) == REDIS_OK else { throw Self.contextError(context) }
        guard let raw else { return nil }
        defer { freeReplyObject(raw) }
        return RedisReply(copying: raw.assumingMemoryBound(to: redisReply.self))
    }

    static func contextError(_ context: UnsafeMutablePointer<redisContext>, connecting: Bool = false, target: String = "") -> RedisError {
        let code = context.pointee.err
        let text = withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let suffix = target.isEmpty ? "" : " (\(target))"
        if text.contains("temporarily unavailable") || text.lowercased().contains("timed out") {
            return RedisError(kind: .timeout, message: (connecting ? "connect: " : "") + text + suffix, code: code)
        }
        if connecting {
            return RedisError(kind: .connectionFailed, message: text + suffix, code: code)
        }
        switch code {
        case REDIS_ERR_PROTOCOL:
            return RedisError(kind: .protocol, message: text, code: code)
        case REDIS_ERR_EOF, REDIS_ERR_IO:
            return RedisError(kind: .connectionLost, message: text.isEmpty ? "connection closed" : text, code: code)
        default:
            return RedisError(kind: .connectionLost, message: text, code: code)
        }
    }
}

extension timeval {
    init(_ duration: Duration) {
        let microseconds = max(0, duration.wholeMicroseconds)
        self.init(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
    }
}

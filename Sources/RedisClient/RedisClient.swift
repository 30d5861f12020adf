import Dispatch
public import Logging
import Synchronization
import Backoff

/// An async Redis client over one hiredis connection.
///
/// Thread-safety: `RedisClient` is `Sendable`; any task may call it. Commands are executed in
/// call order on one serial dispatch queue that owns the blocking connection, so hiredis never
/// blocks a thread of Swift's cooperative pool. Concurrent callers are serialised; for
/// parallelism use several clients, for throughput use `execute(_:)` with a pipeline.
///
/// Reconnect: when the connection breaks, the failing command throws `.connectionLost` (it may
/// or may not have run; the client never re-sends it). Later calls reconnect, spaced by the
/// configuration's capped, jittered back-off; a call made before the next attempt is due fails
/// fast with `retryAfter` set, so callers can wait without hammering the server.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let queue: DispatchQueue
    private let slot: ConnectionSlot
    private let scriptHashes = Mutex<[String: String]>([:])

    /// Counters about the connection's life, for metrics.
    public struct Statistics: Sendable, Equatable {
        /// Successful connects after the first one.
        public var reconnects = 0
        /// Failed connect attempts.
        public var connectFailures = 0
        /// Connections dropped because of a transport error or timeout.
        public var connectionsLost = 0
    }

    /// Creates a client that connects on first use.
    public init(configuration: RedisConfiguration, label: String = "redis", logger: Logger = Logger(label: "redis")) {
        self.configuration = configuration
        self.queue = DispatchQueue(label: "redis-client.\(label)")
        self.slot = ConnectionSlot(configuration: configuration, logger: logger)
    }

    /// Creates a client and connects now, so configuration errors (wrong address, AUTH) surface here.
    public static func connect(configuration: RedisConfiguration, label: String = "redis", logger: Logger = Logger(label: "redis")) async throws(RedisError) -> RedisClient {
        let client = RedisClient(configuration: configuration, label: label, logger: logger)
        _ = try await client.send(.ping())
        return client
    }

    /// A snapshot of the connection counters.
    public var statistics: Statistics { slot.statistics.withLock { $0 } }

    /// True while a connection is open (it may still turn out to be broken on next use).
    public var isConnected: Bool { slot.connected.withLock { $0 } }

    /// Sends one command and decodes its reply; an error reply throws `.server`.
    public func send<Value>(_ command: RedisCommand<Value>) async throws(RedisError) -> Value {
        let reply = try await perform { connection throws(RedisError) in try connection.send(command.arguments) }
        return try command.value(from: reply)
    }

    /// Sends `command` on the connection numbered `serial` only (`RedisConnection.serial`, e.g.
    /// `RedisTransactionResult.connection`): `.connectionLost` when that connection is gone, and
    /// no new one is made for it. For `WAIT`, which counts one connection's writes.
    public func send<Value>(_ command: RedisCommand<Value>, onConnection serial: UInt64) async throws(RedisError) -> Value {
        let result: Result<RedisReply, RedisError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: self.slot.runOnConnection(serial) { connection throws(RedisError) in try connection.send(command.arguments) })
            }
        }
        return try command.value(from: try result.get())
    }

    /// Sends every command of the pipeline in one write and returns the replies in order.
    /// Error replies stay in the array as `.error`; only transport failures throw.
    public func execute(_ pipeline: RedisPipeline) async throws(RedisError) -> [RedisReply] {
        if pipeline.isEmpty { return [] }
        let commands = pipeline.commands
        return try await perform { connection throws(RedisError) in try connection.pipeline(commands) }
    }

    /// Runs a Lua script with `EVALSHA`, loading it first when the server does not know it.
    public func run(_ script: RedisScript, keys: [String], arguments: [[UInt8]]) async throws(RedisError) -> RedisReply {
        var sha: String
        if let cached = scriptHashes.withLock({ $0[script.source] }) {
            sha = cached
        } else {
            sha = try await load(script)
        }
        do {
            return try await send(RedisScript.evalsha(sha: sha, keys: keys, arguments: arguments))
        } catch where error.serverCode == .noScript {
            sha = try await load(script)
            return try await send(RedisScript.evalsha(sha: sha, keys: keys, arguments: arguments))
        }
    }

    /// `SCRIPT LOAD`, remembering the digest for `run`.
    @discardableResult
    public func load(_ script: RedisScript) async throws(RedisError) -> String {
        let sha = try await send(script.load)
        scriptHashes.withLock { $0[script.source] = sha }
        return sha
    }

    /// Sends `SHUTDOWN` (NOSAVE unless `save`); the server closing the connection is success.
    public func shutdownServer(save: Bool = false) async throws(RedisError) {
        do {
            try await send(.shutdown(save: save))
        } catch where error.kind == .connectionLost {
            return
        }
    }

    /// Closes the connection (and, for a Sentinel endpoint, this client's watch on the
    /// sentinels: its thread and connection); later calls throw `.closed`. Returns once they
    /// are gone.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                self.slot.close()
                continuation.resume()
            }
        }
        await slot.watch?.close()
    }

    func perform<T: Sendable>(_ body: @escaping @Sendable (RedisConnection) throws(RedisError) -> T) async throws(RedisError) -> T {
        let result: Result<T, RedisError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: self.slot.run(body))
            }
        }
        return try result.get()
    }
}

/// The connection and its reconnect state; touched only on the client's serial queue
/// (the counters are also read from other threads, hence the mutexes).
///
/// `@unchecked Sendable`: the client hands it to its queue's closures; the plain `var`s are
/// touched only inside those closures, which the serial queue runs one at a time.
private final class ConnectionSlot: @unchecked Sendable {
    let configuration: RedisConfiguration
    let logger: Logger
    var connection: RedisConnection?
    var backoff: ReconnectBackoff
    var nextAttempt: ContinuousClock.Instant?
    var lastError: RedisError?
    var everConnected = false
    var closed = false
    /// For a Sentinel endpoint: the sentinels' failover announcements (this client's own watch,
    /// ended by `close()`), and their count when the connection was made (a newer one makes
    /// the next command reconnect).
    let watch: SentinelWatch?
    var connectedGeneration = 0
    let statistics = Mutex(RedisClient.Statistics())
    let connected = Mutex(false)

    init(configuration: RedisConfiguration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        self.backoff = ReconnectBackoff(policy: configuration.reconnect)
        if case .sentinel(let sentinels) = configuration.endpoint {
            watch = SentinelWatch(sentinels, configuration: configuration, logger: logger)
        } else {
            watch = nil
        }
    }

    func run<T>(_ body: (RedisConnection) throws(RedisError) -> T) -> Result<T, RedisError> {
        do {
            let connection = try ensureConnection()
            let value = try body(connection)
            if case .clusterSlot = configuration.endpoint {
                if let reply = value as? RedisReply {
                    dropIfMoved([reply])
                } else if let replies = value as? [RedisReply] {
                    dropIfMoved(replies)
                }
            }
            return .success(value)
        } catch {
            return .failure(failed(error))
        }
    }

    /// A connection pinned to a cluster slot's primary whose slot moved (a `MOVED` reply) is
    /// dropped: the next command asks the cluster again where the slot is served.
    private func dropIfMoved(_ replies: [RedisReply]) {
        guard let moved = replies.first(where: { if case .error(let message) = $0 { RedisError.ServerCode(errorReply: message) == .moved } else { false } }),
              case .error(let message) = moved else { return }
        _ = failed(RedisError(kind: .server, message: message))
    }

    /// Drops the connection after an error that leaves it unusable; returns the error.
    private func failed(_ error: RedisError) -> RedisError {
        switch error.kind {
        case .server where error.serverCode != .readOnly && error.serverCode != .moved:
            break
        case .connectionLost, .timeout, .protocol, .server:
            // (`-READONLY`: the primary this connection reached was demoted by a failover;
            // the next command reconnects, through the sentinels when configured so. `-MOVED`:
            // a cluster slot this connection was pinned to moved; the next connect asks again.)
            if self.connection != nil {
                self.connection = nil
                connected.withLock { $0 = false }
                statistics.withLock { $0.connectionsLost += 1 }
                logger.warning("Redis connection lost", metadata: ["redis": "\(configuration)", "error": "\(error.message)"])
            }
        default:
            break
        }
        return error
    }

    /// Runs `body` on the current connection only if it is the one numbered `serial`.
    func runOnConnection<T>(_ serial: UInt64, _ body: (RedisConnection) throws(RedisError) -> T) -> Result<T, RedisError> {
        guard let connection, connection.serial == serial else {
            return .failure(RedisError(kind: .connectionLost, message: "the connection that wrote is gone; its writes may not be on any replica"))
        }
        do {
            return .success(try body(connection))
        } catch {
            return .failure(failed(error))
        }
    }

    func close() {
        closed = true
        connection = nil
        connected.withLock { $0 = false }
    }

    private func ensureConnection() throws(RedisError) -> RedisConnection {
        if let connection {
            guard let watch, watch.generation != connectedGeneration else { return connection }
            // The sentinels switched the primary: this one may live on as a replica.
            logger.notice("the sentinels switched the primary; reconnecting", metadata: ["redis": "\(configuration)", "was": "\(connection.server)"])
            self.connection = nil
            connected.withLock { $0 = false }
        }
        if closed { throw RedisError(kind: .closed, message: "the client was closed") }
        let now = ContinuousClock.now
        if let nextAttempt, now < nextAttempt {
            var error = lastError ?? RedisError(kind: .connectionLost, message: "not connected")
            error.retryAfter = nextAttempt - now
            throw error
        }
        do {
            let generation = watch?.generation ?? 0
            let made = try RedisConnection(configuration: configuration)
            connectedGeneration = generation
            connection = made
            connected.withLock { $0 = true }
            backoff.recordSuccess()
            nextAttempt = nil
            if everConnected {
                statistics.withLock { $0.reconnects += 1 }
                logger.info("Redis reconnected", metadata: ["redis": "\(configuration)", "server": "\(made.server)"])
            }
            everConnected = true
            return made
        } catch {
            let delay = backoff.recordFailure()
            nextAttempt = now + delay
            var failure = error
            failure.retryAfter = delay
            lastError = failure
            statistics.withLock { $0.connectFailures += 1 }
            throw failure
        }
    }
}

/// A Redis that sends each command where its key lives: one server (`RedisClient`, where every
/// key lives), or the primary of the key's slot (`RedisClusterClient`). For the parts of the
/// product that only read and write keys one at a time (operator commands, the simulator), so
/// the same code serves `redis://`, `redis-sentinel://` and `redis-cluster://`.
public protocol RedisRouting: Sendable {
    /// Sends `command`, whose key is `key`, to the server holding it.
    func send<Value>(_ command: RedisCommand<Value>, routedBy key: String) async throws(RedisError) -> Value
    /// Sends the pipeline's commands, `keys[i]` being command `i`'s key, one pipeline per server;
    /// the replies come back in the pipeline's order (error replies included). Not atomic across
    /// servers: when one fails, the others' commands may have run.
    func execute(_ pipeline: RedisPipeline, routedBy keys: [String]) async throws(RedisError) -> [RedisReply]
    /// Every key matching `pattern`, on every server that holds keys, each once.
    func keys(matching pattern: String, pageSize: Int) async throws(RedisError) -> [String]
    /// Sends a command that concerns each server itself (`INFO`, `DBSIZE`) to every one: their
    /// replies, named by server.
    func sendToEach<Value>(_ command: RedisCommand<Value>) async throws(RedisError) -> [(server: String, value: Value)]
    /// The values of string keys, nil where absent: one `MGET` on one server; on a cluster one
    /// `GET` per key (keys of many slots), pipelined to each primary.
    func values(of keys: [String]) async throws(RedisError) -> [[UInt8]?]
    func close() async
}

extension RedisConfiguration {
    /// Whether this names a Redis Cluster (`redis-cluster://`).
    public var isCluster: Bool {
        if case .cluster = endpoint { return true }
        return false
    }
}

/// Connects to what `configuration` names: a `RedisClusterClient` for a cluster, a `RedisClient`
/// otherwise; either way configuration errors (address, AUTH, not a cluster node) surface here.
public func connectRedis(configuration: RedisConfiguration, label: String = "redis") async throws(RedisError) -> any RedisRouting {
    if configuration.isCluster { return try await RedisClusterClient.connect(configuration: configuration, label: label) }
    return try await RedisClient.connect(configuration: configuration, label: label)
}

extension RedisClient: RedisRouting {
    public func send<Value>(_ command: RedisCommand<Value>, routedBy key: String) async throws(RedisError) -> Value {
        try await send(command)
    }

    public func execute(_ pipeline: RedisPipeline, routedBy keys: [String]) async throws(RedisError) -> [RedisReply] {
        try await execute(pipeline)
    }

    public func sendToEach<Value>(_ command: RedisCommand<Value>) async throws(RedisError) -> [(server: String, value: Value)] {
        [(configuration.description, try await send(command))]
    }

    public func values(of keys: [String]) async throws(RedisError) -> [[UInt8]?] {
        try await send(.mget(keys))
    }
}

extension RedisClusterClient: RedisRouting {
    /// Groups the commands by their slot's primary, one pipeline to each; a command answered
    /// with a redirection (`MOVED`, `ASK`, `TRYAGAIN`) is sent again on its own, following it.
    public func execute(_ pipeline: RedisPipeline, routedBy keys: [String]) async throws(RedisError) -> [RedisReply] {
        let commands = pipeline.commands
        guard keys.count == commands.count else {
            throw RedisError(kind: .unexpectedReply, message: "\(commands.count) commands but \(keys.count) routing keys: a bug in the caller", command: "pipeline")
        }
        var replies = [RedisReply](repeating: .null, count: commands.count)
        var byNode: [Address: [Int]] = [:]
        var unrouted: [Int] = []
        let map = slotMap
        for (index, key) in keys.enumerated() {
            if let owner = map.primary(forSlot: HashSlot.of(key)) { byNode[owner, default: []].append(index) } else { unrouted.append(index) }
        }
        // Every node's part at once: the pipeline costs one round trip of wall time, not one per node.
        let parts = await withTaskGroup(of: (RedisConfiguration.Address, [Int], Result<[RedisReply], RedisError>).self) { group in
            for (address, indices) in byNode {
                var part = RedisPipeline(capacity: indices.count)
                for index in indices { _ = part.append(RedisCommand<RedisReply>.raw(commands[index])) }
                let client = node(address)
                group.addTask {
                    do throws(RedisError) {
                        return (address, indices, .success(try await client.execute(part)))
                    } catch {
                        return (address, indices, .failure(error))
                    }
                }
            }
            var all: [(RedisConfiguration.Address, [Int], Result<[RedisReply], RedisError>)] = []
            for await part in group { all.append(part) }
            return all
        }
        var lost: RedisError?
        for (address, indices, result) in parts {
            let answered: [RedisReply]
            switch result {
            case .success(let replies):
                answered = replies
            case .failure(let error) where error.kind == .connectionFailed:
                // Refused before anything was sent: each command goes again on its own, after
                // the map is read again (the node may be dead and its replica promoted).
                unrouted += indices
                continue
            case .failure(let error):
                // They may have run: not sent again; the map is read again for the caller's retry.
                if error.kind == .connectionLost || error.kind == .timeout { try? await refresh(avoiding: address) } // try?: the retry reads the map again if this fails
                lost = lost ?? error
                continue
            }
            for (position, index) in indices.enumerated() {
                if case .error(let message) = answered[position], [.moved, .ask, .tryAgain, .clusterDown].contains(RedisError.ServerCode(errorReply: message)) {
                    unrouted.append(index)
                } else {
                    replies[index] = answered[position]
                }
            }
        }
        if let lost { throw lost }
        for index in unrouted.sorted() {
            do {
                replies[index] = try await send(RedisCommand<RedisReply>.raw(commands[index]), routedBy: keys[index])
            } catch where error.kind == .server {
                replies[index] = .error(error.message)
            }
        }
        return replies
    }

    public func sendToEach<Value>(_ command: RedisCommand<Value>) async throws(RedisError) -> [(server: String, value: Value)] {
        var values: [(server: String, value: Value)] = []
        for primary in primaries { values.append((primary.description, try await node(primary).send(command))) }
        return values
    }

    public func values(of keys: [String]) async throws(RedisError) -> [[UInt8]?] {
        if keys.isEmpty { return [] }
        var pipeline = RedisPipeline(capacity: keys.count)
        for key in keys { _ = pipeline.append(RedisCommand<[UInt8]?>.get(key)) }
        let replies = try await execute(pipeline, routedBy: keys)
        var values: [[UInt8]?] = []
        values.reserveCapacity(keys.count)
        for (index, reply) in replies.enumerated() {
            switch reply {
            case .bulk(let bytes): values.append(bytes)
            case .null: values.append(nil)
            case .error(let message) where RedisError.ServerCode(errorReply: message) == .wrongType: values.append(nil) // as MGET answers for a key that holds no string
            case .error(let message): throw RedisError(kind: .server, message: message, command: "GET \(keys[index])")
            default: throw RedisError(kind: .unexpectedReply, message: "GET answered \(reply)", command: "GET \(keys[index])")
            }
        }
        return values
    }
}

extension RedisRouting {
    /// Every key matching `pattern` (see `keys(matching:pageSize:)`), 1,000 asked for per call.
    public func keys(matching pattern: String) async throws(RedisError) -> [String] {
        try await keys(matching: pattern, pageSize: 1_000)
    }
}

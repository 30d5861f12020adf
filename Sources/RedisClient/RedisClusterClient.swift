public import Logging
import Synchronization
public import Backoff

/// Routes commands over a Redis Cluster: the slot map from `CLUSTER SHARDS` (or `CLUSTER
/// SLOTS`), a pool of `connectionsPerNode` `RedisClient`s (one connection each) per node, each
/// command sent to the primary of its key's slot.
///
/// Redirections are followed: `MOVED` refreshes the map and sends the command again to the
/// new owner; `ASK` (a slot being migrated) sends `ASKING` and the command once to the node named,
/// without changing the map; `TRYAGAIN` (keys of a multi-key command split by a migration) and
/// `CLUSTERDOWN` wait with the one back-off policy and try again; a node that refuses the
/// connection gets the map refreshed from another node before the next try. A command whose
/// connection broke after it was sent is not sent again (it may have run): that throws
/// `.connectionLost`, as from `RedisClient`. All of these are safe for a transaction or script:
/// Redis refuses one that would run on the wrong node, or during a migration, without
/// applying any of it.
public final class RedisClusterClient: Sendable {
    public typealias Address = RedisConfiguration.Address

    public let configuration: RedisConfiguration
    private let seeds: [Address]
    private let label: String
    private let logger: Logger
    private let state: Mutex<State>
    /// How often one command follows a redirection or waits out a cluster state before its
    /// last error is thrown.
    let attempts = 8
    public let pause = ReconnectBackoff.Policy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(640))
    /// Connections kept per node (made as they are first used): a writer spreads one node's
    /// transactions over them, so they run side by side instead of one after another.
    public let connectionsPerNode: Int

    private struct State {
        var map: ClusterSlotMap
        /// Per node, its connections by lane (lane 0 first).
        var clients: [Address: [Int: RedisClient]] = [:]
    }

    private init(configuration: RedisConfiguration, seeds: [Address], map: ClusterSlotMap, label: String, logger: Logger, connectionsPerNode: Int) {
        self.configuration = configuration
        self.seeds = seeds
        self.label = label
        self.logger = logger
        self.connectionsPerNode = max(1, connectionsPerNode)
        state = Mutex(State(map: map))
    }

    /// A client that reads the slot map on first use (for services built synchronously): a
    /// wrong URL, no reachable seed or a server not in cluster mode fails that first command.
    public convenience init(configuration: RedisConfiguration, label: String = "redis-cluster", logger: Logger = Logger(label: "redis-cluster"),
                            connectionsPerNode: Int = RedisClusterClient.defaultConnectionsPerNode) throws(RedisError) {
        self.init(configuration: configuration, seeds: try Self.seeds(of: configuration), map: ClusterSlotMap(shards: []), label: label, logger: logger,
                  connectionsPerNode: connectionsPerNode)
    }

    /// Four connections per node: enough to keep a primary's transactions in flight side by side
    /// on a LAN, few enough that hundreds of clients stay far under a node's `maxclients`.
    public static let defaultConnectionsPerNode = 4

    /// The seed nodes of a `redis-cluster://` configuration.
    private static func seeds(of configuration: RedisConfiguration) throws(RedisError) -> [Address] {
        guard case .cluster(let seeds) = configuration.endpoint, !seeds.isEmpty else {
            throw RedisError(kind: .invalidConfiguration, message: "\(configuration) is not a redis-cluster:// URL")
        }
        return seeds
    }

    /// Connects through the configuration's seed nodes (`.cluster`) and reads the slot map, so a
    /// wrong URL, no reachable seed or a server not in cluster mode fails here, naming it.
    public static func connect(configuration: RedisConfiguration, label: String = "redis-cluster", logger: Logger = Logger(label: "redis-cluster"),
                               connectionsPerNode: Int = RedisClusterClient.defaultConnectionsPerNode) async throws(RedisError) -> RedisClusterClient {
        let seeds = try seeds(of: configuration)
        let map = try await fetchMap(from: seeds, configuration: configuration, clientFor: nil)
        return RedisClusterClient(configuration: configuration, seeds: seeds, map: map, label: label, logger: logger, connectionsPerNode: connectionsPerNode)
    }

    /// The slot map as last read.
    public var slotMap: ClusterSlotMap { state.withLock { $0.map } }

    /// The primaries serving slots now.
    public var primaries: [Address] { slotMap.primaries }

    /// The client of one node (made on first use, then kept), e.g. for a transaction on the
    /// primary of a slot: the caller then handles redirections itself.
    public func node(_ address: Address) -> RedisClient {
        node(address, lane: 0)
    }

    /// One of the node's `connectionsPerNode` connections (`lane` modulo their number), made on
    /// first use, then kept. Commands on one lane run in order; lanes run side by side.
    public func node(_ address: Address, lane: Int) -> RedisClient {
        let lane = ((lane % connectionsPerNode) + connectionsPerNode) % connectionsPerNode
        return state.withLock { state in
            if let client = state.clients[address]?[lane] { return client }
            let client = RedisClient(configuration: Self.nodeConfiguration(address, configuration), label: "\(label).\(address)#\(lane)", logger: logger)
            state.clients[address, default: [:]][lane] = client
            return client
        }
    }

    /// The primary serving `slot` now, nil when none does (the cluster is down for it).
    public func primary(forSlot slot: Int) -> Address? { slotMap.primary(forSlot: slot) }

    /// Sends `command` to the primary of `key`'s slot.
    public func send<Value>(_ command: RedisCommand<Value>, routedBy key: String) async throws(RedisError) -> Value {
        try await send(command, slot: HashSlot.of(key))
    }

    /// Sends `command` to the primary of `slot`, following redirections (see the type).
    public func send<Value>(_ command: RedisCommand<Value>, slot: Int) async throws(RedisError) -> Value {
        var pauses = ReconnectBackoff(policy: pause)
        var asking: Address?
        var last = Self.noOwner(slot, command: command.arguments.name)
        for _ in 0..<attempts {
            let target: Address
            if let asking {
                target = asking
            } else if let owner = primary(forSlot: slot) {
                target = owner
            } else {
                last = try await awaitOwner(of: slot, pauses: &pauses) ?? last
                continue
            }
            do {
                if asking != nil {
                    asking = nil
                    var pipeline = RedisPipeline(capacity: 2)
                    _ = pipeline.append(.raw(["ASKING"]))
                    _ = pipeline.append(command)
                    let replies = try await node(target).execute(pipeline)
                    return try command.value(from: replies[1])
                }
                return try await node(target).send(command)
            } catch {
                last = error
                switch await follow(error, slot: slot, from: target, pauses: &pauses) {
                case .retry: continue
                case .ask(let node): asking = node
                case .giveUp: throw error
                }
            }
        }
        throw last
    }

    /// What to do after `error` from `target` for a command of `slot`.
    public enum Redirection: Sendable, Equatable {
        /// Send it again (the map was corrected, or a pause waited out a migration or a node).
        case retry
        /// Send `ASKING` and it once to this node (a slot being migrated), map unchanged.
        case ask(Address)
        /// Not a redirection, or the command may have run (its connection broke after sending):
        /// throw the error.
        case giveUp
    }

    /// The one redirection rule, for single commands and whole transactions alike: `MOVED`
    /// routes the slot to the node it names (and reads the map again); `ASK` names the node to
    /// ask once; `TRYAGAIN`/`CLUSTERDOWN` pause; a node that refused, timed out or dropped the
    /// connection gets the map read again from the others (and a pause), but only a refused
    /// connection, where nothing was sent, is retried.
    public func follow(_ error: RedisError, slot: Int, from target: Address, pauses: inout ReconnectBackoff) async -> Redirection {
        switch error.serverCode {
        case .moved?:
            logger.debug("slot \(slot) moved: \(error.message); reading the slot map again")
            try? await refresh() // try?: a failed refresh leaves the old map; the MOVED reply's node is used below either way
            if let owner = Self.redirection(error.message, asked: target) {
                if slotMap.primary(forSlot: slot) == target { try? await Task.sleep(for: pauses.recordFailure()) } // try?: a cancelled pause only retries sooner
                state.withLock { $0.map.assign(slot: slot, to: owner) }
            }
            return .retry
        case .ask?:
            guard let node = Self.redirection(error.message, asked: target) else { return .giveUp }
            return .ask(node)
        case .tryAgain?, .clusterDown?:
            try? await Task.sleep(for: pauses.recordFailure()) // try?: a cancelled pause only retries sooner
            return .retry
        default:
            guard [.connectionFailed, .connectionLost, .timeout].contains(error.kind) else { return .giveUp }
            // The node may be gone or cut off: the others name its successor once they agree.
            try? await refresh(avoiding: target) // try?: the next attempt, or the caller's retry, reads the map again
            guard error.kind == .connectionFailed else { return .giveUp }
            try? await Task.sleep(for: pauses.recordFailure()) // try?: a cancelled pause only retries sooner
            return .retry
        }
    }

    /// No primary serves `slot` in the map: read it again (a wrong URL or credentials throw),
    /// and pause before the next look. Returns the error to report if it stays so.
    public func awaitOwner(of slot: Int, pauses: inout ReconnectBackoff) async throws(RedisError) -> RedisError? {
        var problem: RedisError?
        do {
            try await refresh()
        } catch where error.isConfigurationProblem {
            throw error // no retry mends a wrong URL or credentials
        } catch {
            problem = error
        }
        try? await Task.sleep(for: pauses.recordFailure()) // try?: a cancelled pause only retries sooner
        return problem
    }

    /// The error for a slot no primary serves.
    public static func noOwner(_ slot: Int, command: String) -> RedisError {
        RedisError(kind: .server, message: "CLUSTERDOWN no primary serves slot \(slot)", command: command)
    }

    /// Every key matching `pattern` on every primary (`SCAN` on each), each once.
    public func keys(matching pattern: String, pageSize: Int = 1_000) async throws(RedisError) -> [String] {
        var found: [String] = []
        var seen = Set<String>()
        for primary in primaries {
            for key in try await node(primary).keys(matching: pattern, pageSize: pageSize) where seen.insert(key).inserted { found.append(key) }
        }
        return found
    }

    /// Reads the slot map again, from the known primaries, then the seeds (`avoiding` a node
    /// last).
    public func refresh(avoiding: Address? = nil) async throws(RedisError) {
        let known = slotMap.shards.flatMap { [$0.primary] + $0.replicas }
        var order: [Address] = []
        for address in known + seeds where address != avoiding && !order.contains(address) { order.append(address) }
        if let avoiding { order.append(avoiding) }
        let map = try await Self.fetchMap(from: order, configuration: configuration, clientFor: node)
        state.withLock { $0.map = map }
    }

    /// Closes every node's connection.
    public func close() async {
        for client in state.withLock({ $0.clients.values.flatMap(\.values) }) { await client.close() }
    }

    /// The node named by a `MOVED`/`ASK` error (`MOVED 3999 127.0.0.1:6381`); an empty or `?`
    /// host (a node that does not know its own address) means the one asked, `asked`.
    static func redirection(_ message: String, asked: Address) -> Address? {
        let parts = message.split(separator: " ")
        guard parts.count >= 3, let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]) else { return nil }
        var host = String(parts[2][..<colon])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host.isEmpty || host == "?" { host = asked.host }
        return Address(host: host, port: port)
    }

    /// One node's configuration: the cluster's credentials and limits, that node's address.
    static func nodeConfiguration(_ address: Address, _ cluster: RedisConfiguration) -> RedisConfiguration {
        RedisConfiguration(endpoint: .tcp(host: address.host, port: address.port), username: cluster.username, password: cluster.password, database: 0,
                           connectTimeout: cluster.connectTimeout, commandTimeout: cluster.commandTimeout, reconnect: cluster.reconnect)
    }

    /// The slot map from the first of `nodes` that gives one. `clientFor` supplies kept clients;
    /// nil connects afresh (at start) and closes again.
    private static func fetchMap(from nodes: [Address], configuration: RedisConfiguration, clientFor: ((Address) -> RedisClient)?) async throws(RedisError) -> ClusterSlotMap {
        var problems: [String] = []
        for address in nodes {
            let client = clientFor?(address) ?? RedisClient(configuration: nodeConfiguration(address, configuration), label: "redis-cluster.seed")
            let read = await readMap(client)
            if clientFor == nil { await client.close() }
            switch read {
            case .success(let map) where map.primaries.isEmpty:
                problems.append("\(address): no primary serves any slot (the cluster is not created yet?)")
            case .success(let map):
                return map
            case .failure(let error):
                if let stop = ClusterSlotMap.stopAsking(after: error, from: address) { throw stop }
                problems.append("\(address): \(error.message)")
            }
        }
        throw RedisError(kind: .connectionFailed, message: "no cluster node answered with a slot map (\(problems.joined(separator: "; ")))", command: "CLUSTER SHARDS")
    }

    /// The map as `client`'s node tells it (`ClusterSlotMap.read`, on the client's connection).
    private static func readMap(_ client: RedisClient) async -> Result<ClusterSlotMap, RedisError> {
        do throws(RedisError) {
            return .success(try await client.perform { connection throws(RedisError) in try ClusterSlotMap.read(from: connection) })
        } catch {
            return .failure(error)
        }
    }
}

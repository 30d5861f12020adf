public import RedisClient
import Durations

/// A Redis Cluster on loopback for tests and the demo: `primaries` primaries with
/// `replicasPerPrimary` replicas each (3 and 1 by default: six `redis-server` processes with
/// `--cluster-enabled yes`, append-only), created with `redis-cli --cluster create`, each on a
/// free port in a directory of its own and stopped by pid.
public final class RedisCluster: Sendable {
    /// Every node, primaries first as created (a failover may change who is primary).
    public let nodes: [RedisServer]

    /// Starts the nodes, creates the cluster and waits until every node sees all slots served
    /// and every replica online.
    public init(primaries: Int = 3, replicasPerPrimary: Int = 1, nodeTimeout: Duration = .seconds(2), appendOnly: Bool = true) async throws {
        let persistence = appendOnly ? ["--appendonly", "yes", "--appendfsync", "everysec"] : []
        var started: [RedisServer] = []
        for _ in 0..<(primaries * (1 + replicasPerPrimary)) {
            started.append(try await RedisServer(extraArguments: [
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", String(nodeTimeout.wholeMilliseconds), "--repl-diskless-sync-delay", "0",
            ] + persistence))
        }
        nodes = started
        guard let cli = which("redis-cli") else { throw LocalServiceError("redis-cli is not installed (apt-get install redis-tools)") }
        let created = try await runCommand(cli, ["--cluster", "create"] + started.map { "127.0.0.1:\($0.port)" }
                                                + ["--cluster-replicas", String(replicasPerPrimary), "--cluster-yes"], timeout: .seconds(60))
        guard created.status == 0 else {
            throw LocalServiceError("redis-cli --cluster create failed (\(created.status)): \(created.stdout.suffix(400)) \(created.stderr.suffix(400))")
        }
        let ports = started.map(\.port)
        try await waitUntil("every cluster node sees all 16384 slots served and its replicas online", timeout: .seconds(60), every: .milliseconds(100)) {
            for port in ports {
                guard let info = try? await SentinelCluster.ask(port: port, ["CLUSTER", "INFO"]), info.string?.contains("cluster_state:ok") == true else { return false } // try?: not answering yet is not ready yet
            }
            guard let shards = try? await SentinelCluster.ask(port: ports[0], ["CLUSTER", "SHARDS"]), // try?: as above
                  let map = try? ClusterSlotMap.parse(shards: shards) else { return false } // try?: as above
            return map.primaries.count == primaries && map.shards.allSatisfy { $0.replicas.count == replicasPerPrimary } && map.uncoveredSlots == 0
        }
    }

    /// `redis-cluster://` with every node as a seed.
    public var url: String { "redis-cluster://" + nodes.map { "127.0.0.1:\($0.port)" }.joined(separator: ",") }

    /// A configuration for `RedisClusterClient` with the quick timeouts of `RedisServer.quick`.
    public var configuration: RedisConfiguration {
        RedisServer.quick(RedisConfiguration(endpoint: .cluster(seeds: nodes.map { .init(host: "127.0.0.1", port: $0.port) })))
    }

    /// The node listening on `port`.
    public func node(port: Int) -> RedisServer? { nodes.first { $0.port == port } }

    /// Stops every node (SIGTERM).
    public func stop() {
        for node in nodes { node.stop() }
    }
}

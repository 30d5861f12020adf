import Foundation
@testable import RedisClient
import Testing
import TestSupport

/// `redis-cluster://` URLs and the slot map, without servers.
@Suite struct ClusterConfigurationTests {
    @Test func aClusterURLNamesItsSeeds() throws {
        let config = try RedisConfiguration(url: "redis-cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002")
        #expect(config.endpoint == .cluster(seeds: [.init(host: "10.0.0.1", port: 7000), .init(host: "10.0.0.2", port: 6379), .init(host: "::1", port: 7002)]))
        #expect(config.username == "app" && config.password == "s@cret")
        #expect(config.description == "redis-cluster://app:***@10.0.0.1:7000,10.0.0.2:6379,[::1]:7002")
        #expect(try RedisConfiguration(url: "redis-cluster://h:7000/0").endpoint == .cluster(seeds: [.init(host: "h", port: 7000)]), "database 0 named is fine")
    }

    @Test func aBadClusterURLSaysWhatIsWrong() {
        for (url, why) in [("redis-cluster://", "expected redis-cluster://host:port"), ("redis-cluster://h:7000,,h2", "empty node address"),
                           ("redis-cluster://h:7000/3", "only database 0"), ("redis-cluster://h:99999", "not 1–65535"),
                           ("rediss-cluster://h:7000", "TLS")] {
            #expect(throws: RedisError.self, "\(url)") { _ = try RedisConfiguration(url: url) }
            do { _ = try RedisConfiguration(url: url) } catch {
                #expect(error.kind == .invalidConfiguration && error.message.contains(why), "\(url): \(error.message)")
            }
        }
    }

    @Test func clusterShardsIsParsedWithItsEdgeCases() throws {
        func node(_ port: Int, _ role: String, _ health: String = "online", endpoint: String = "127.0.0.1") -> RedisReply {
            .array([.bulk(Array("id".utf8)), .bulk(Array("n\(port)".utf8)), .bulk(Array("port".utf8)), .integer(Int64(port)), .bulk(Array("ip".utf8)), .bulk(Array("10.0.0.\(port % 10)".utf8)),
                    .bulk(Array("endpoint".utf8)), .bulk(Array(endpoint.utf8)), .bulk(Array("role".utf8)), .bulk(Array(role.utf8)), .bulk(Array("health".utf8)), .bulk(Array(health.utf8))])
        }
        func shard(_ bounds: [Int], _ nodes: [RedisReply]) -> RedisReply {
            .array([.bulk(Array("slots".utf8)), .array(bounds.map { .integer(Int64($0)) }), .bulk(Array("nodes".utf8)), .array(nodes)])
        }
        let reply: RedisReply = .array([
            shard([0, 100, 200, 5460], [node(7001, "master"), node(7004, "replica", "fail")]), // two ranges; a failed replica left out
            shard([5461, 10922], [node(7002, "master", endpoint: "?"), node(7005, "replica")]), // endpoint unknown: the ip is used
            shard([10923, 16383], [node(7003, "master", "fail"), node(7006, "replica")]), // no live primary: its slots are uncovered
        ])
        let map = try ClusterSlotMap.parse(shards: reply)
        #expect(map.primaries.map(\.port) == [7001, 7002])
        #expect(map.shard(forSlot: 0)?.replicas.isEmpty == true && map.primary(forSlot: 150) == nil && map.primary(forSlot: 300)?.port == 7001)
        #expect(map.primary(forSlot: 6000) == .init(host: "10.0.0.2", port: 7002))
        #expect(map.uncoveredSlots == 99 + 5461)
        var moved = map
        moved.assign(slot: 150, to: .init(host: "127.0.0.1", port: 7003))
        #expect(moved.primary(forSlot: 150)?.port == 7003 && moved.uncoveredSlots == map.uncoveredSlots - 1, "a MOVED reply routes its slot at once")
    }

    @Test func aRedirectionNamesItsNode() {
        let asked = RedisConfiguration.Address(host: "10.0.0.9", port: 7000)
        #expect(RedisClusterClient.redirection("MOVED 3999 127.0.0.1:6381", asked: asked) == .init(host: "127.0.0.1", port: 6381))
        #expect(RedisClusterClient.redirection("ASK 3999 [::1]:6381", asked: asked) == .init(host: "::1", port: 6381))
        #expect(RedisClusterClient.redirection("MOVED 3999 :6381", asked: asked) == .init(host: "10.0.0.9", port: 6381), "no host: the node asked")
        #expect(RedisClusterClient.redirection("MOVED 3999", asked: asked) == nil)
    }

    @Test func clusterSlotsIsParsed() throws {
        func node(_ port: Int) -> RedisReply { .array([.bulk(Array("127.0.0.1".utf8)), .integer(Int64(port)), .bulk(Array("id\(port)".utf8))]) }
        let reply: RedisReply = .array([
            .array([.integer(0), .integer(5460), node(7001), node(7004)]),
            .array([.integer(5461), .integer(10922), node(7002), node(7005)]),
            .array([.integer(10923), .integer(16383), node(7003)]),
        ])
        let map = try ClusterSlotMap.parse(slots: reply)
        #expect(map.primaries.map(\.port) == [7001, 7002, 7003] && map.uncoveredSlots == 0)
        #expect(map.primary(forSlot: 5461)?.port == 7002 && map.shard(forSlot: 0)?.replicas.map(\.port) == [7004])
        #expect(map.primary(forSlot: 16384) == nil)
    }
}

/// The cluster client against a real six-node cluster (three primaries, three replicas).
@Suite(.serialized) struct RedisClusterTests {
    @Test func commandsGoToTheirSlotsPrimaryAndScansCoverEveryPrimary() async throws {
        let cluster = try await RedisCluster()
        let client = try await RedisClusterClient.connect(configuration: cluster.configuration)
        #expect(client.primaries.count == 3 && client.slotMap.uncoveredSlots == 0)
        let prefix = uniqueName("routed")
        for index in 0..<60 { _ = try await client.send(.set("\(prefix):\(index)", "v\(index)"), routedBy: "\(prefix):\(index)") }
        for index in 0..<60 {
            #expect(try await client.send(.get("\(prefix):\(index)"), routedBy: "\(prefix):\(index)") == Array("v\(index)".utf8))
        }
        // The client's slot rule is the server's.
        for index in 0..<20 {
            let key = "\(prefix):{tag\(index)}:x"
            #expect(try await client.send(.raw(["CLUSTER", "KEYSLOT", key]), routedBy: key) == .integer(Int64(HashSlot.of(key))))
        }
        // Values of many slots, in order; a key that holds no string reads as absent, as with MGET.
        _ = try await client.send(.lpush("\(prefix):list", [Array("x".utf8)]), routedBy: "\(prefix):list")
        let values = try await client.values(of: ["\(prefix):5", "\(prefix):none", "\(prefix):list", "\(prefix):41"])
        #expect(values == [Array("v5".utf8), nil, nil, Array("v41".utf8)])
        let found = try await client.keys(matching: "\(prefix):*").filter { !$0.hasSuffix(":list") }
        #expect(found.count == 60)
        var owners = Set<Int>()
        for key in found { if let owner = client.primary(forSlot: HashSlot.of(key)) { owners.insert(owner.port) } }
        #expect(owners.count == 3, "the keys live on every primary, and the scan found them all")
        await client.close()
    }

    /// A slot moved to another primary while the client holds the old map (`MOVED`), and a key
    /// already moved while its slot is still migrating (`ASK`).
    @Test func redirectionsAreFollowed() async throws {
        let cluster = try await RedisCluster()
        let client = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let key = uniqueName("moving")
        let slot = HashSlot.of(key)
        _ = try await client.send(.set(key, "before"), routedBy: key)
        let source = try #require(client.primary(forSlot: slot))
        let target = try #require(client.primaries.first { $0 != source })
        let sourceNode = client.node(source)
        let targetNode = client.node(target)
        let sourceID = try await sourceNode.send(.raw(["CLUSTER", "MYID"])).string ?? ""
        let targetID = try await targetNode.send(.raw(["CLUSTER", "MYID"])).string ?? ""

        // Mid-migration, the key already on the target: the source answers ASK.
        _ = try await targetNode.send(.raw(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID]))
        _ = try await sourceNode.send(.raw(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID]))
        _ = try await sourceNode.send(.raw(["MIGRATE", target.host, String(target.port), key, "0", "5000"]))
        #expect(try await client.send(.get(key), routedBy: key) == Array("before".utf8), "ASK followed with ASKING")
        #expect(client.primary(forSlot: slot) == source, "ASK leaves the map as it is")

        // The move completes: the old owner answers MOVED, the client reads the map again.
        for primary in [target, source] + client.primaries.filter({ $0 != source && $0 != target }) {
            _ = try await client.node(primary).send(.raw(["CLUSTER", "SETSLOT", String(slot), "NODE", targetID]))
        }
        _ = try await client.send(.set(key, "after"), routedBy: key)
        #expect(client.primary(forSlot: slot) == target, "MOVED refreshed the map")
        #expect(try await targetNode.send(.get(key)) == Array("after".utf8))
        await client.close()
    }

    @Test func aServerNotInClusterModeOrNoSeedIsAClearErrorAtStart() async throws {
        let single = try await RedisServer()
        do {
            _ = try await RedisClusterClient.connect(configuration: try RedisConfiguration(url: "redis-cluster://127.0.0.1:\(single.port)"))
            Issue.record("a single server taken for a cluster")
        } catch {
            #expect(error.kind == .invalidConfiguration && error.message.contains("not in cluster mode"), "\(error)")
        }
        let unused = try FreePort.find()
        do {
            var config = try RedisConfiguration(url: "redis-cluster://127.0.0.1:\(unused)")
            config.connectTimeout = .milliseconds(500)
            _ = try await RedisClusterClient.connect(configuration: config)
            Issue.record("connected to no node")
        } catch {
            #expect(error.kind == .connectionFailed && error.message.contains("127.0.0.1:\(unused)"), "\(error)")
        }
        // The single-server client refuses a cluster URL instead of sending to one node.
        let plain = RedisClient(configuration: try RedisConfiguration(url: "redis-cluster://127.0.0.1:\(single.port)"))
        do {
            _ = try await plain.send(.ping())
            Issue.record("a cluster URL served by one connection")
        } catch {
            #expect(error.kind == .invalidConfiguration, "\(error)")
        }
    }
}

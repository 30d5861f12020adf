import Foundation
import RedisClient
import Testing
import TestSupport

/// Shard channels on a real 6-node cluster: refused on the wrong node, placed on the right one,
/// and placed again after a slot move and a primary's death.
@Suite(.serialized) struct ShardedSubscriberTests {
    /// Events a subscriber reported, in order.
    final class Events: Sendable {
        let all = Collector<RedisSubscriberEvent>()
        var messages: [String] { all.values.compactMap { if case .message(let m) = $0 { String(decoding: m.payload, as: UTF8.self) } else { nil } } }
        var disconnects: Int { all.values.filter { if case .disconnected = $0 { true } else { false } }.count }
        var reconnects: Int { all.values.filter { $0 == .reconnected }.count }
        var restored: [String] {
            all.values.flatMap { event -> [String] in
                if case .shardChannelsRestored(let names) = event { return names }
                return []
            }
        }
        var lost: [String] {
            all.values.flatMap { event -> [String] in
                if case .shardChannelsLost(let names, _) = event { return names }
                return []
            }
        }
    }

    /// A channel name whose slot the given primary serves (and not another).
    func channel(on primary: RedisConfiguration.Address, _ redis: RedisClusterClient, tag: String) -> String {
        var n = 0
        while true {
            let name = "\(tag):{c\(n)}"
            if redis.primary(forSlot: HashSlot.of(name)) == primary { return name }
            n += 1
        }
    }

    @Test func aNodeRefusesAShardChannelOfAnotherSlotAndLetsItGo() async throws {
        let cluster = try await RedisCluster(appendOnly: false)
        defer { cluster.stop() }
        let redis = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let (here, elsewhere) = (redis.primaries[0], redis.primaries[1])
        let tag = uniqueName("refused")
        let mine = channel(on: here, redis, tag: tag)
        let foreign = channel(on: elsewhere, redis, tag: tag)
        let events = Events()
        let subscriber = RedisSubscriber(configuration: RedisServer.quick(RedisConfiguration(endpoint: .tcp(host: here.host, port: here.port)))) { events.all.append($0) }
        try await subscriber.ssubscribe([mine])
        do {
            try await subscriber.ssubscribe([foreign])
            Issue.record("a node accepted a shard channel of a slot it does not serve")
        } catch {
            #expect(error.serverCode == .moved, "\(error)")
        }
        #expect(subscriber.shardChannels == [mine])
        #expect(events.lost == [foreign])
        // The connection still delivers what it holds.
        _ = try await redis.send(.spublish(mine, Array("hello".utf8)), routedBy: mine)
        try await waitUntil("the held channel still delivers") { events.messages == ["hello"] }
        await subscriber.close()
        await redis.close()
    }

    @Test func channelsFollowASlotMoveAndAPrimarysDeath() async throws {
        let cluster = try await RedisCluster(appendOnly: false)
        defer { cluster.stop() }
        let redis = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let tag = uniqueName("follow")
        let channels = redis.primaries.map { channel(on: $0, redis, tag: tag) }
        let events = Events()
        let subscriber = try RedisShardedSubscriber(configuration: cluster.configuration, placementCheck: .milliseconds(500)) { events.all.append($0) }
        try await subscriber.subscribe(channels)
        #expect(Set(subscriber.placed.values) == Set(redis.primaries), "one node subscriber per primary")
        var sent: [String] = []
        func publishToAll(_ round: String) async throws {
            for channel in channels {
                let text = "\(round) \(channel)"
                _ = try await redis.send(.spublish(channel, Array(text.utf8)), routedBy: channel)
                sent.append(text)
            }
            try await waitUntil("\(round): every channel delivers", timeout: .seconds(20)) { Set(events.messages).isSuperset(of: sent) }
        }
        try await publishToAll("first")

        // The first channel's slot moves: its node drops it, it is subscribed on the new owner;
        // that channel alone is interrupted, the others deliver on.
        let slot = HashSlot.of(channels[0])
        let target = redis.primaries[1]
        try await cluster.moveSlot(slot, to: target, using: redis)
        try await waitUntil("the moved channel is placed on its new primary", timeout: .seconds(30)) {
            subscriber.placed[channels[0]] == target && events.restored == [channels[0]]
        }
        #expect(events.lost == [channels[0]], "only the moved channel was interrupted, before its placement: \(events.lost)")
        #expect(events.disconnects == 0 && events.reconnects == 0, "a slot move is no outage")
        try await publishToAll("moved")

        // The third channel's primary dies: after the promotion it is subscribed on the new one.
        let deadSlot = HashSlot.of(channels[2])
        let dead = try #require(redis.primary(forSlot: deadSlot))
        let reconnectsBefore = events.reconnects
        try #require(cluster.node(port: dead.port)).kill()
        try await waitUntil("the channel is placed on the promoted replica", timeout: .seconds(60), every: .milliseconds(100)) {
            (subscriber.placed[channels[2]].map { $0 != dead } ?? false) && events.reconnects > reconnectsBefore
        }
        try await redis.refresh(avoiding: dead)
        try await publishToAll("failed over")
        #expect(Set(subscriber.placed.values).isDisjoint(with: [dead]))
        await subscriber.close()
        await redis.close()
    }

    @Test func withReadFromReplicasChannelsAreServedByReplicas() async throws {
        let cluster = try await RedisCluster(appendOnly: false)
        defer { cluster.stop() }
        let redis = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let tag = uniqueName("replica")
        let channels = redis.primaries.map { channel(on: $0, redis, tag: tag) }
        let events = Events()
        let subscriber = try RedisShardedSubscriber(configuration: cluster.configuration, readFromReplicas: true) { events.all.append($0) }
        try await subscriber.subscribe(channels)
        let replicas = Set(redis.slotMap.shards.flatMap(\.replicas))
        #expect(Set(subscriber.placed.values).isSubset(of: replicas) && subscriber.placed.count == channels.count, "\(subscriber.placed)")
        for channel in channels { _ = try await redis.send(.spublish(channel, Array(channel.utf8)), routedBy: channel) }
        try await waitUntil("every channel delivers through a replica", timeout: .seconds(20)) { Set(events.messages) == Set(channels) }
        await subscriber.close()
        await redis.close()
    }
}

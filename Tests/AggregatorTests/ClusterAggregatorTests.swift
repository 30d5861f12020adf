import Foundation
import KafkaClient
import Logging
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation

/// The aggregator on a Redis Cluster (issue 22): each camera written on its slot's primary,
/// results published to shard channels, the guarantees of one server kept per camera.
@Suite(.serialized) struct ClusterAggregatorTests {
    @Test func aBatchIsWrittenCameraByCameraOnEveryPrimaryExactlyOnce() async throws {
        let cluster = try await RedisCluster()
        let redis = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let topic = uniqueName("results")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 4), .init(topic + ".dlq", partitions: 1)])
        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrapServers
        config.topic = topic
        config.deadLetterTopic = topic + ".dlq"
        config.group = uniqueName("group")
        config.redisURL = cluster.url
        config.keys = KeySchema(namespace: uniqueName("ns") + ":")
        config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties
        config.batchSize = 300
        config.alertListLength = 10_000
        config.historyLength = 10_000
        let keys = KeySchema(namespace: config.keys.namespace, hashTagged: true)

        var simulator = ResultSimulator(cameras: 24, alertRatio: 0.25, seed: 22, runTag: "cluster")
        let frames = (0..<3_000).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        var detections = RedisPipeline(capacity: frames.count)
        for frame in frames { detections.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
        _ = try await redis.execute(detections, routedBy: frames.map { keys.detection($0.requestId) })
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration())
        for frame in frames { try producer.produce(topic: topic, key: Array(String(frame.cameraId).utf8), value: frame.assessment) }
        try await producer.flush()

        // Written twice by two services one after the other (the second as after a crash before
        // any commit): every effect once.
        for round in 0..<2 {
            var run = config
            if round == 1 { run.group = uniqueName("group-again") }
            let service = try AggregatorService(configuration: run, bootstrap: kafka.bootstrapServers, logger: Logger(label: "test.aggregator.cluster"))
            let running = Task { try await service.run() }
            try await waitUntil("round \(round): every result in its camera's history", timeout: .seconds(90), every: .milliseconds(100)) {
                var total = 0
                for camera in 0..<24 { total += try await redis.send(.hget(keys.position(camera), field: round == 0 ? "offset" : "redelivered_skipped"), routedBy: keys.position(camera)).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0 }
                return total == frames.count
            }
            service.requestStop()
            try await running.value
        }

        var primaries = Set<Int>()
        for (camera, mine) in Dictionary(grouping: frames, by: \.cameraId) {
            let history = try await redis.send(.xrange(keys.history(camera)), routedBy: keys.history(camera)).compactMap { $0["r"] }
            let ids = history.map(Self.requestId)
            #expect(ids == mine.map(\.requestId), "camera \(camera): every result once, in order")
            let offsets = history.compactMap { ResultPosition.parse(prefixOf: $0)?.offset }
            #expect(offsets == Array(1...Int64(mine.count)), "camera \(camera): gap-free positions")
            let alerts = try await redis.send(.lrange(keys.alerts(camera), start: 0, stop: -1), routedBy: keys.alerts(camera)).map(Self.requestId)
            #expect(alerts.count == Set(alerts).count && Set(alerts) == Set(mine.filter(\.isAlert).map(\.requestId)), "camera \(camera): every alert once")
            let latest = try await redis.send(.get(keys.latest(camera)), routedBy: keys.latest(camera))
            #expect(latest.map(Self.requestId) == mine.last?.requestId, "camera \(camera): latest is the newest")
            if let owner = redis.primary(forSlot: HashSlot.of(keys.position(camera))) { primaries.insert(owner.port) }
        }
        #expect(primaries.count == 3, "the cameras were written on every primary")
        // Shard channels, not PUBLISH (which every node of a cluster would carry).
        var spublished = 0
        for (_, info) in try await redis.sendToEach(.info("commandstats")) {
            if let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_spublish:") }),
               let calls = line.split(separator: ",").first?.split(separator: "=").last.flatMap({ Int($0) }) { spublished += calls }
            #expect(!info.contains("cmdstat_publish:"), "no PUBLISH on a cluster")
        }
        #expect(spublished == frames.count, "one SPUBLISH per result, none for the redeliveries")
        await redis.close()
    }

    /// A live camera's slot migrated to another primary mid-stream (`SETSLOT … IMPORTING` /
    /// `MIGRATING`, `MIGRATE`, `SETSLOT … NODE`): its writes wait out `ASK`/`TRYAGAIN`, follow
    /// `MOVED` to the new owner, and its history stays exactly once and gap-free.
    @Test func aLiveCamerasSlotMigratedMidStreamLosesAndRepeatsNothing() async throws {
        let cluster = try await RedisCluster()
        let redis = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let topic = uniqueName("results")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 4), .init(topic + ".dlq", partitions: 1)])
        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrapServers
        config.topic = topic
        config.deadLetterTopic = topic + ".dlq"
        config.group = uniqueName("group")
        config.redisURL = cluster.url
        config.keys = KeySchema(namespace: uniqueName("ns") + ":")
        config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties
        config.batchSize = 100
        config.alertListLength = 10_000
        config.historyLength = 10_000
        let keys = KeySchema(namespace: config.keys.namespace, hashTagged: true)
        var simulator = ResultSimulator(cameras: 8, alertRatio: 0.25, seed: 23, runTag: "migrate")
        let frames = (0..<2_400).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        var detections = RedisPipeline(capacity: frames.count)
        for frame in frames { detections.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
        _ = try await redis.execute(detections, routedBy: frames.map { keys.detection($0.requestId) })
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration())
        var next = 0
        func produceMore() async throws {
            guard next < frames.count else { return }
            for frame in frames[next..<min(next + 60, frames.count)] { try producer.produce(topic: topic, key: Array(String(frame.cameraId).utf8), value: frame.assessment) }
            try await producer.flush()
            next = min(next + 60, frames.count)
            try await Task.sleep(for: .milliseconds(20))
        }
        func applied(_ camera: Int) async throws -> Int {
            try await redis.send(.hget(keys.position(camera), field: "offset"), routedBy: keys.position(camera)).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
        }
        let service = try AggregatorService(configuration: config, bootstrap: kafka.bootstrapServers, logger: Logger(label: "test.aggregator.migrate"))
        let running = Task { try await service.run() }
        let moving = 3
        try await waitUntil("camera \(moving) is being written", timeout: .seconds(60), every: .milliseconds(5)) {
            try await produceMore()
            return try await applied(moving) > 20
        }

        // Move the camera's slot while results keep coming.
        let slot = HashSlot.of(keys.position(moving))
        let source = try #require(redis.primary(forSlot: slot))
        let target = try #require(redis.primaries.first { $0 != source })
        let sourceID = try await redis.node(source).send(.raw(["CLUSTER", "MYID"])).string ?? ""
        let targetID = try await redis.node(target).send(.raw(["CLUSTER", "MYID"])).string ?? ""
        _ = try await redis.node(target).send(.raw(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID]))
        _ = try await redis.node(source).send(.raw(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID]))
        let before = try await applied(moving)
        var moved = 0
        while true {
            try await produceMore()
            guard case .array(let names) = try await redis.node(source).send(.raw(["CLUSTER", "GETKEYSINSLOT", String(slot), "100"])), !names.isEmpty else { break }
            _ = try await redis.node(source).send(.raw(["MIGRATE", target.host, String(target.port), "", "0", "5000", "KEYS"] + names.compactMap(\.string)))
            moved += names.count
        }
        for primary in [target, source] + redis.primaries.filter({ $0 != source && $0 != target }) {
            _ = try await redis.node(primary).send(.raw(["CLUSTER", "SETSLOT", String(slot), "NODE", targetID]))
        }
        #expect(moved >= 4, "the camera's keys moved (\(moved))")
        while next < frames.count { try await produceMore() }
        try await waitUntil("every result applied", timeout: .seconds(90), every: .milliseconds(50)) {
            var total = 0
            for camera in 0..<8 { total += try await applied(camera) }
            return total == frames.count
        }
        service.requestStop()
        try await running.value
        try await redis.refresh()
        #expect(redis.primary(forSlot: slot) == target)
        #expect(try await applied(moving) > before, "the camera was written on its new primary too")
        for (camera, mine) in Dictionary(grouping: frames, by: \.cameraId) {
            let history = try await redis.send(.xrange(keys.history(camera)), routedBy: keys.history(camera)).compactMap { $0["r"] }
            #expect(history.map(Self.requestId) == mine.map(\.requestId), "camera \(camera): every result once, in order")
            #expect(history.compactMap { ResultPosition.parse(prefixOf: $0)?.offset } == Array(1...Int64(mine.count)), "camera \(camera): gap-free")
            let alerts = try await redis.send(.lrange(keys.alerts(camera), start: 0, stop: -1), routedBy: keys.alerts(camera)).map(Self.requestId)
            #expect(alerts.count == Set(alerts).count && Set(alerts) == Set(mine.filter(\.isAlert).map(\.requestId)), "camera \(camera): every alert once")
            #expect(try await redis.send(.get(keys.latest(camera)), routedBy: keys.latest(camera)).map(Self.requestId) == mine.last?.requestId)
        }
        await redis.close()
    }

    /// Two aggregators in one group on a cluster, the second joining mid-stream and leaving
    /// again: every camera's results once, whichever member wrote them.
    @Test func twoAggregatorsInOneGroupApplyEveryResultOnce() async throws {
        let cluster = try await RedisCluster()
        let redis = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let topic = uniqueName("results")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 8), .init(topic + ".dlq", partitions: 1)])
        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrapServers
        config.topic = topic
        config.deadLetterTopic = topic + ".dlq"
        config.group = uniqueName("group")
        config.redisURL = cluster.url
        config.keys = KeySchema(namespace: uniqueName("ns") + ":")
        config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties
        config.batchSize = 100
        config.alertListLength = 10_000
        config.historyLength = 10_000
        let keys = KeySchema(namespace: config.keys.namespace, hashTagged: true)
        var simulator = ResultSimulator(cameras: 12, alertRatio: 0.25, seed: 25, runTag: "pair")
        let frames = (0..<6_000).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        var detections = RedisPipeline(capacity: frames.count)
        for frame in frames { detections.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
        _ = try await redis.execute(detections, routedBy: frames.map { keys.detection($0.requestId) })
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration())
        var next = 0
        func produceMore(_ count: Int = 60) async throws {
            guard next < frames.count else { return }
            for frame in frames[next..<min(next + count, frames.count)] { try producer.produce(topic: topic, key: Array(String(frame.cameraId).utf8), value: frame.assessment) }
            try await producer.flush()
            next = min(next + count, frames.count)
            try await Task.sleep(for: .milliseconds(25))
        }
        func consumed(_ service: AggregatorService) -> Double {
            String(decoding: service.metrics.render(), as: UTF8.self).split(separator: "\n")
                .first { $0.hasPrefix("aggregator_messages_consumed_total ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
        let first = try AggregatorService(configuration: config, bootstrap: kafka.bootstrapServers, logger: Logger(label: "test.aggregator.first"))
        let firstRun = Task { try await first.run() }
        try await waitUntil("the first member writes", timeout: .seconds(60), every: .milliseconds(5)) {
            try await produceMore()
            return consumed(first) > 0
        }
        let second = try AggregatorService(configuration: config, bootstrap: kafka.bootstrapServers, logger: Logger(label: "test.aggregator.second"))
        let secondRun = Task { try await second.run() }
        try await waitUntil("the second member took partitions and writes", timeout: .seconds(90), every: .milliseconds(5)) {
            if next < frames.count * 3 / 4 { try await produceMore(20) }
            return consumed(second) > 0
        }
        for _ in 0..<5 { try await produceMore() }
        second.requestStop() // leaves with a batch in flight while messages keep arriving
        while next < frames.count { try await produceMore(200) }
        try await secondRun.value
        try await waitUntil("every result applied", timeout: .seconds(120), every: .milliseconds(100)) {
            var total = 0
            for camera in 0..<12 { total += try await redis.send(.hget(keys.position(camera), field: "offset"), routedBy: keys.position(camera)).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0 }
            return total == frames.count
        }
        first.requestStop()
        try await firstRun.value
        for (camera, mine) in Dictionary(grouping: frames, by: \.cameraId) {
            let history = try await redis.send(.xrange(keys.history(camera)), routedBy: keys.history(camera)).compactMap { $0["r"] }
            #expect(history.map(Self.requestId) == mine.map(\.requestId), "camera \(camera): every result once, in order")
            let alerts = try await redis.send(.lrange(keys.alerts(camera), start: 0, stop: -1), routedBy: keys.alerts(camera)).map(Self.requestId)
            #expect(alerts.count == Set(alerts).count && Set(alerts) == Set(mine.filter(\.isAlert).map(\.requestId)), "camera \(camera): every alert once")
            #expect(try await redis.send(.get(keys.latest(camera)), routedBy: keys.latest(camera)).map(Self.requestId) == mine.last?.requestId)
        }
        await redis.close()
    }

    @Test func aBracedNamespaceIsRefusedAtStart() async throws {
        var config = AggregatorConfiguration()
        config.redisURL = "redis-cluster://127.0.0.1:7000"
        config.keys = KeySchema(namespace: "{prod}:")
        do {
            _ = try AggregatorService(configuration: config, bootstrap: "127.0.0.1:9")
            Issue.record("a braced namespace accepted on a cluster")
        } catch let error as RedisError {
            #expect(error.kind == .invalidConfiguration && error.message.contains("contains '{' or '}'"), "\(error)")
        }
    }

    /// A primary SIGKILLed mid-stream with `--min-replica-acks 1`: its replica is promoted, the
    /// aggregator finds it through the other nodes, and what it had acknowledged was on the
    /// replica — every result once, every alert once, gap-free, `latest` the newest.
    @Test func aPrimaryKilledMidStreamIsFollowedToItsPromotedReplica() async throws {
        let cluster = try await RedisCluster()
        let redis = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let topic = uniqueName("results")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 4), .init(topic + ".dlq", partitions: 1)])
        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrapServers
        config.topic = topic
        config.deadLetterTopic = topic + ".dlq"
        config.group = uniqueName("group")
        config.redisURL = cluster.url
        config.keys = KeySchema(namespace: uniqueName("ns") + ":")
        config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties
        config.batchSize = 100
        config.alertListLength = 10_000
        config.historyLength = 10_000
        config.minimumReplicaAcks = 1
        config.replicaAckTimeout = .milliseconds(500)
        let keys = KeySchema(namespace: config.keys.namespace, hashTagged: true)
        var simulator = ResultSimulator(cameras: 9, alertRatio: 0.25, seed: 24, runTag: "kill")
        let frames = (0..<2_700).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        var detections = RedisPipeline(capacity: frames.count)
        for frame in frames { detections.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
        _ = try await redis.execute(detections, routedBy: frames.map { keys.detection($0.requestId) })
        // The detections are on the replicas too before a primary dies.
        for (_, acks) in try await redis.sendToEach(.raw(["WAIT", "1", "5000"])) { #expect(acks == .integer(1)) }
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration())
        var next = 0
        func produceMore() async throws {
            guard next < frames.count else { return }
            for frame in frames[next..<min(next + 60, frames.count)] { try producer.produce(topic: topic, key: Array(String(frame.cameraId).utf8), value: frame.assessment) }
            try await producer.flush()
            next = min(next + 60, frames.count)
            try await Task.sleep(for: .milliseconds(20))
        }
        func applied(_ camera: Int) async throws -> Int {
            try await redis.send(.hget(keys.position(camera), field: "offset"), routedBy: keys.position(camera)).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
        }
        let service = try AggregatorService(configuration: config, bootstrap: kafka.bootstrapServers, logger: Logger(label: "test.aggregator.kill"))
        let running = Task { try await service.run() }
        let victimCamera = 4
        try await waitUntil("camera \(victimCamera) is being written", timeout: .seconds(60), every: .milliseconds(5)) {
            try await produceMore()
            return try await applied(victimCamera) > 30
        }
        let slot = HashSlot.of(keys.position(victimCamera))
        let dead = try #require(redis.primary(forSlot: slot))
        let victim = try #require(cluster.node(port: dead.port))
        victim.kill()
        // The stream goes on while the cluster fails over.
        try await waitUntil("the replica is promoted", timeout: .seconds(60), every: .milliseconds(50)) {
            try await produceMore()
            try? await redis.refresh(avoiding: dead) // try?: the map is read again until a live node answers
            return redis.primary(forSlot: slot).map { $0 != dead } ?? false
        }
        // The promoted replica has no replica of its own, so `WAIT 1` there waits until the dead
        // node comes back (a restarted container) and rejoins as its replica.
        try await victim.start()
        while next < frames.count { try await produceMore() }
        try await waitUntil("every result applied", timeout: .seconds(120), every: .milliseconds(100)) {
            var total = 0
            for camera in 0..<9 { total += (try? await applied(camera)) ?? 0 } // try?: a camera still on its way to a new primary counts as not yet
            return total == frames.count
        }
        service.requestStop()
        try await running.value
        for (camera, mine) in Dictionary(grouping: frames, by: \.cameraId) {
            let history = try await redis.send(.xrange(keys.history(camera)), routedBy: keys.history(camera)).compactMap { $0["r"] }
            #expect(history.map(Self.requestId) == mine.map(\.requestId), "camera \(camera): every result once, in order")
            #expect(history.compactMap { ResultPosition.parse(prefixOf: $0)?.offset } == Array(1...Int64(mine.count)), "camera \(camera): gap-free")
            let alerts = try await redis.send(.lrange(keys.alerts(camera), start: 0, stop: -1), routedBy: keys.alerts(camera)).map(Self.requestId)
            #expect(alerts.count == Set(alerts).count && Set(alerts) == Set(mine.filter(\.isAlert).map(\.requestId)), "camera \(camera): every alert once")
            #expect(try await redis.send(.get(keys.latest(camera)), routedBy: keys.latest(camera)).map(Self.requestId) == mine.last?.requestId)
        }
        await redis.close()
    }

    static func requestId(_ json: [UInt8]) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] // try?: a payload that is no JSON object fails the expectation on it
        return object?["requestId"] as? String ?? "?"
    }
}

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

    @Test func replicaAcknowledgementsOrABracedNamespaceAreRefusedAtStart() async throws {
        var config = AggregatorConfiguration()
        config.redisURL = "redis-cluster://127.0.0.1:7000"
        config.minimumReplicaAcks = 1
        #expect(throws: RedisError.self) { _ = try AggregatorService(configuration: config, bootstrap: "127.0.0.1:9") }
        config.minimumReplicaAcks = 0
        config.keys = KeySchema(namespace: "{prod}:")
        #expect(throws: RedisError.self) { _ = try AggregatorService(configuration: config, bootstrap: "127.0.0.1:9") }
    }

    static func requestId(_ json: [UInt8]) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] // try?: a payload that is no JSON object fails the expectation on it
        return object?["requestId"] as? String ?? "?"
    }
}

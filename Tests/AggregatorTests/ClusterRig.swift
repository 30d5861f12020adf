import Foundation
import KafkaClient
import Logging
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation

/// A six-node Redis Cluster, an embedded broker and a stream of simulated results for the
/// aggregator's cluster tests: the detections written, the results produced on demand (paced),
/// and the end state checked exactly once per camera.
final class ClusterRig: Sendable {
    let cluster: RedisCluster
    let redis: RedisClusterClient
    let kafka: EmbeddedKafka
    let producer: KafkaProducer
    let configuration: AggregatorConfiguration
    let keys: KeySchema
    let frames: [ResultSimulator.Frame]
    let cameras: Int
    private let produced = Collector<Int>() // how far the stream was produced, as counts

    init(cameras: Int, results: Int, partitions: Int = 4, seed: UInt64, configure: (inout AggregatorConfiguration) -> Void = { _ in }) async throws {
        cluster = try await RedisCluster()
        redis = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let topic = uniqueName("results")
        kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: partitions), .init(topic + ".dlq", partitions: 1)])
        producer = try KafkaProducer(configuration: kafka.producerConfiguration())
        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrapServers
        config.topic = topic
        config.deadLetterTopic = topic + ".dlq"
        config.group = uniqueName("group")
        config.redisURL = cluster.url
        config.keys = KeySchema(namespace: uniqueName("ns") + ":")
        config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties
        config.batchSize = 100
        config.alertListLength = 10_000 // keep every alert and result, so the checks can be exact
        config.historyLength = 10_000
        configure(&config)
        configuration = config
        keys = KeySchema(namespace: config.keys.namespace, hashTagged: true)
        self.cameras = cameras
        var simulator = ResultSimulator(cameras: cameras, alertRatio: 0.25, seed: seed, runTag: "cluster\(seed)")
        frames = (0..<results).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        var detections = RedisPipeline(capacity: frames.count)
        for frame in frames { detections.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
        _ = try await redis.execute(detections, routedBy: frames.map { keys.detection($0.requestId) })
    }

    /// How many results each camera gets.
    var perCamera: [Int: Int] { Dictionary(grouping: frames, by: \.cameraId).mapValues(\.count) }

    /// Results produced so far.
    var next: Int { produced.values.reduce(0, +) }
    var allProduced: Bool { next >= frames.count }

    /// Produces the next `count` results and pauses `pause`, so the stream flows across a fault.
    func produceMore(_ count: Int = 60, pause: Duration = .milliseconds(20)) async throws {
        let start = next
        guard start < frames.count else { return }
        let end = min(start + count, frames.count)
        for frame in frames[start..<end] { try producer.produce(topic: configuration.topic, key: Array(String(frame.cameraId).utf8), value: frame.assessment) }
        try await producer.flush()
        produced.append(end - start)
        try await Task.sleep(for: pause)
    }

    /// A position hash field of a camera as a number (0 when absent).
    func field(_ name: String, of camera: Int) async throws -> Int {
        try await redis.send(.hget(keys.position(camera), field: name), routedBy: keys.position(camera)).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
    }

    /// Results applied to a camera (its counter).
    func applied(_ camera: Int) async throws -> Int { try await field("offset", of: camera) }

    /// The sum of a position field over every camera.
    func total(_ name: String = "offset") async throws -> Int {
        var sum = 0
        for camera in 0..<cameras { sum += try await field(name, of: camera) }
        return sum
    }

    /// SIGKILLs the primary serving `camera` and waits, the stream flowing, until its replica is
    /// promoted; returns the dead node (to restart it) and its address.
    func killPrimary(of camera: Int) async throws -> (victim: RedisServer, dead: RedisConfiguration.Address) {
        let slot = HashSlot.of(keys.position(camera))
        let dead = try #require(redis.primary(forSlot: slot))
        let victim = try #require(cluster.node(port: dead.port))
        victim.kill()
        try await waitUntil("the replica is promoted", timeout: .seconds(60), every: .milliseconds(50)) {
            try await produceMore()
            try? await redis.refresh(avoiding: dead) // try?: the map is read again until a live node answers
            return redis.primary(forSlot: slot).map { $0 != dead } ?? false
        }
        return (victim, dead)
    }

    func service(_ configuration: AggregatorConfiguration? = nil, label: String) throws -> AggregatorService {
        try AggregatorService(configuration: configuration ?? self.configuration, bootstrap: kafka.bootstrapServers, logger: Logger(label: "test.aggregator.\(label)"))
    }

    /// Every camera's results once in its history, in order and gap-free; every alert once;
    /// `latest` the newest. Returns the primaries the cameras were written on.
    @discardableResult
    func expectExactlyOnce(sourceLocation: SourceLocation = #_sourceLocation) async throws -> Set<Int> {
        var primaries = Set<Int>()
        for (camera, mine) in Dictionary(grouping: frames, by: \.cameraId).sorted(by: { $0.key < $1.key }) {
            let history = try await redis.send(.xrange(keys.history(camera)), routedBy: keys.history(camera)).compactMap { $0["r"] }
            #expect(history.map(Self.requestId) == mine.map(\.requestId), "camera \(camera): every result once, in order", sourceLocation: sourceLocation)
            #expect(history.compactMap { ResultPosition.parse(prefixOf: $0)?.offset } == Array(1...Int64(mine.count)), "camera \(camera): gap-free positions", sourceLocation: sourceLocation)
            let alerts = try await redis.send(.lrange(keys.alerts(camera), start: 0, stop: -1), routedBy: keys.alerts(camera)).map(Self.requestId)
            #expect(alerts.count == Set(alerts).count && Set(alerts) == Set(mine.filter(\.isAlert).map(\.requestId)), "camera \(camera): every alert once", sourceLocation: sourceLocation)
            #expect(try await redis.send(.get(keys.latest(camera)), routedBy: keys.latest(camera)).map(Self.requestId) == mine.last?.requestId, "camera \(camera): latest is the newest", sourceLocation: sourceLocation)
            if let owner = redis.primary(forSlot: HashSlot.of(keys.position(camera))) { primaries.insert(owner.port) }
        }
        return primaries
    }

    static func requestId(_ json: [UInt8]) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] // try?: a payload that is no JSON object fails the expectation on it
        return object?["requestId"] as? String ?? "?"
    }

    func close() async { await redis.close() }
}

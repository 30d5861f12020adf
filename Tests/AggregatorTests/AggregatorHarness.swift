import Foundation
import KafkaClient
import Logging
import RedisClient
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation
import Synchronization

/// A real redis-server, an embedded broker and an in-process aggregator with unique names.
final class AggregatorHarness: Sendable {
    let redisServer: RedisServer
    let kafka: EmbeddedKafka
    let topic: String
    let dlqTopic: String
    let keys: KeySchema
    let producer: KafkaProducer
    let redis: RedisClient
    let configuration: AggregatorConfiguration
    /// The running service and its run loop's task (restartable).
    private let running = Mutex<(service: AggregatorService, task: Task<Void, any Error>)?>(nil)
    var service: AggregatorService? { running.withLock { $0?.service } }

    /// `sentinels`: the aggregator and the harness's own client use that cluster (through its
    /// sentinels) instead of the harness's redis-server.
    init(partitions: Int = 4, redisArguments: [String] = [], sentinels: SentinelCluster? = nil, configure: (inout AggregatorConfiguration) -> Void = { _ in }) async throws {
        redisServer = try await RedisServer(extraArguments: redisArguments)
        topic = uniqueName("results")
        dlqTopic = topic + ".dlq"
        kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: partitions), .init(dlqTopic, partitions: 1)])
        keys = KeySchema(namespace: uniqueName("ns") + ":")
        producer = try KafkaProducer(configuration: kafka.producerConfiguration())
        redis = try await RedisClient.connect(configuration: sentinels?.configuration ?? redisServer.configuration)
        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrapServers
        config.topic = topic
        config.deadLetterTopic = dlqTopic
        config.group = uniqueName("group")
        config.redisURL = sentinels?.url ?? redisServer.url
        config.keys = keys
        config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties
        configure(&config)
        configuration = config
    }

    /// Starts (or restarts) the service.
    func start() throws {
        let service = try AggregatorService(configuration: configuration, bootstrap: kafka.bootstrapServers, logger: Logger(label: "test.aggregator"))
        running.withLock { $0 = (service, Task { try await service.run() }) }
    }

    /// Asks the service to stop and waits until its loop has committed and left the group.
    func stop() async throws {
        guard let (service, task) = running.withLock({ $0 }) else { return }
        service.requestStop()
        try await task.value
        running.withLock { $0 = nil }
    }

    func produce(_ value: [UInt8], camera: Int? = nil) throws {
        try producer.produce(topic: topic, key: camera.map { Array(String($0).utf8) }, value: value)
    }

    func produce(_ text: String, camera: Int? = nil) throws {
        try produce(Array(text.utf8), camera: camera)
    }

    func flush() async throws { try await producer.flush() }

    /// Writes the frames' detections and produces their assessments.
    func send(_ frames: [ResultSimulator.Frame], withDetections: Bool = true) async throws {
        if withDetections {
            var pipeline = RedisPipeline()
            for frame in frames { pipeline.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
            _ = try await redis.execute(pipeline)
        }
        for frame in frames { try produce(frame.assessment, camera: frame.cameraId) }
        try await flush()
    }

    /// Waits until every partition's committed offset reached its end: everything processed.
    func waitUntilCommitted(timeout: Duration = .seconds(60)) async throws {
        let probe = try KafkaConsumer(configuration: kafka.consumerConfiguration(group: configuration.group))
        let partitions = try await probe.partitionCount(topic: topic)
        try await waitUntil("all offsets of \(topic) committed", timeout: timeout, every: .milliseconds(100)) {
            for p in 0..<Int32(partitions) {
                let (_, high) = try await probe.watermarks(topic: topic, partition: p)
                let committed = try await probe.committedOffsets([KafkaTopicPartition(topic: topic, partition: p)]).first?.offset ?? 0
                if committed < high { return false }
            }
            return true
        }
    }

    func alerts(_ camera: Int) async throws -> [String] {
        try await redis.send(.lrange(keys.alerts(camera), start: 0, stop: -1)).map(Self.requestId)
    }

    func latest(_ camera: Int) async throws -> [UInt8]? {
        try await redis.send(.get(keys.latest(camera)))
    }

    static func requestId(_ json: [UInt8]) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] // try?: a payload that is no JSON object fails the expectation on it
        return object?["requestId"] as? String ?? "?"
    }

    /// Reads every message of the dead-letter topic.
    func deadLetters(expected: Int) async throws -> [KafkaMessage] {
        let consumer = try KafkaConsumer(configuration: kafka.consumerConfiguration(group: uniqueName("dlq-reader")))
        try consumer.subscribe(topics: [dlqTopic])
        var got: [KafkaMessage] = []
        try await waitUntil("\(expected) dead letters", timeout: .seconds(30)) {
            got += try await consumer.nextBatch(maxMessages: 1000, timeout: .milliseconds(100))
            return got.count >= expected
        }
        await consumer.close()
        return got
    }
}

func assessment(_ id: String, camera: Int, time: String, level: String = "low", dangerous: Bool = false, extra: String = "") -> String {
    #"{"requestId":"\#(id)","cameraId":\#(camera),"timestamp":"\#(time)","riskAssessment":{"maxRiskLevel":"\#(level)","hasDangerousDriving":\#(dangerous)}\#(extra)}"#
}

import ArgumentParser
import Foundation
import KafkaClient
import Logging
import RedisClient
import ServiceCLI
import TrafficModel
import Simulation

/// `traffic-sim`: stands in for the camera pipeline and LLM scheduler upstream of the product.
/// Writes `detection:<requestId>` into Redis and produces the matching risk assessment to Kafka.
@main
struct TrafficSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "traffic-sim",
        abstract: "Simulate cameras: detections into Redis, risk assessments into Kafka."
    )

    @Option(name: .customLong("kafka-bootstrap"), help: "Kafka bootstrap servers (env KAFKA_BOOTSTRAP).") var kafkaBootstrap: String?
    @Option(name: .customLong("bootstrap-file"), help: "Read the bootstrap address from this file (written by `traffic-aggregator run --bootstrap-file`); waits for it.") var bootstrapFile: String?
    @Option(help: "Topic (env KAFKA_TOPIC).") var topic: String?
    @Option(name: .customLong("redis-url"), help: "Redis URL (env REDIS_URL).") var redisURL: String?
    @Option(help: "Key namespace prefix (env TRAFFIC_NAMESPACE).") var namespace: String?
    @Option(help: "Results per second.") var rate = 20.0
    @Option(help: "Stop after this many results (0: run until interrupted).") var count = 0
    @Option(help: "Number of cameras.") var cameras = 50
    @Option(name: .customLong("alert-ratio"), help: "Share of results that are alerts.") var alertRatio = 0.2
    @Option(name: .customLong("missing-detection-ratio"), help: "Share of results whose detection is not written.") var missingDetectionRatio = 0.02
    @Option(name: .customLong("bad-ratio"), help: "Share of deliberately malformed messages (exercise the dead-letter path).") var badRatio = 0.0
    @Option(name: .customLong("frame-every"), help: "Every n-th detection carries a painted frame image (base64 PNG with its boxes); 0: none.") var frameEvery = 0
    @Option(name: .customLong("detection-ttl"), help: "TTL of detection keys in seconds.") var detectionTTL = 600
    @Option(name: .customShort("X"), help: ArgumentHelp("librdkafka property key=value, repeatable.", valueName: "key=value")) var kafkaProperties: [String] = []

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .warning
            return handler
        }
        var bootstrap = setting(kafkaBootstrap, env: "KAFKA_BOOTSTRAP")
        if bootstrap == nil, let bootstrapFile {
            let deadline = ContinuousClock.now + .seconds(60)
            while bootstrap == nil {
                // Not there until the aggregator has written it (atomically); any other read
                // failure is reported.
                let text = FileManager.default.fileExists(atPath: bootstrapFile) ? try String(contentsOfFile: bootstrapFile, encoding: .utf8) : ""
                if !text.isEmpty { bootstrap = text.trimmingCharacters(in: .whitespacesAndNewlines) }
                else if ContinuousClock.now > deadline { throw ValidationError("no bootstrap address in \(bootstrapFile) after 60 s") }
                else { try await Task.sleep(for: .milliseconds(100)) }
            }
        }
        guard let bootstrap else { throw ValidationError("give --kafka-bootstrap, KAFKA_BOOTSTRAP or --bootstrap-file") }
        let topic = setting(topic, env: "KAFKA_TOPIC") ?? "risk-assessment-results"
        let redisConfiguration = try RedisConfiguration(url: setting(redisURL, env: "REDIS_URL") ?? "redis://127.0.0.1:6379")
        let namespace = setting(namespace, env: "TRAFFIC_NAMESPACE") ?? ""
        if redisConfiguration.isCluster, let problem = KeySchema.clusterProblem(namespace: namespace) { throw ValidationError(problem) }
        let keys = KeySchema(namespace: namespace, hashTagged: redisConfiguration.isCluster)
        var kafkaConfig = KafkaConfiguration(["bootstrap.servers": bootstrap, "linger.ms": "1"])
        try kafkaConfig.apply(assignments: kafkaProperties)
        let producer = try KafkaProducer(configuration: kafkaConfig)
        let redis = try await connectRedis(configuration: redisConfiguration) // one server, or each detection on its slot's primary
        var simulator = ResultSimulator(cameras: cameras, alertRatio: alertRatio, seed: UInt64(Date().timeIntervalSince1970 * 1000))
        simulator.frameImageEvery = max(0, frameEvery)
        FileHandle.standardError.write(Data("traffic-sim: \(rate)/s over \(cameras) cameras → \(topic) at \(bootstrap)\n".utf8))

        let tick = Duration.milliseconds(50)
        let perTick = rate * 0.05
        var owed = 0.0
        var sent = 0
        let clock = ContinuousClock()
        var nextTick = clock.now
        while count == 0 || sent < count {
            owed += perTick
            var frames: [ResultSimulator.Frame] = []
            while owed >= 1, count == 0 || sent + frames.count < count {
                frames.append(simulator.next(at: Int64(Date().timeIntervalSince1970 * 1000)))
                owed -= 1
            }
            if !frames.isEmpty {
                var pipeline = RedisPipeline()
                var routing: [String] = []
                for frame in frames where Double.random(in: 0..<1) >= missingDetectionRatio {
                    pipeline.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(detectionTTL)))
                    routing.append(keys.detection(frame.requestId))
                }
                _ = try await redis.execute(pipeline, routedBy: routing) // detections first, as the camera pipeline does
                for frame in frames {
                    var value = frame.assessment
                    if Double.random(in: 0..<1) < badRatio { value = Array(value.prefix(value.count / 2)) }
                    try producer.produce(topic: topic, key: Array(String(frame.cameraId).utf8), value: value)
                }
                try await producer.flush() // every result of this tick acknowledged before the next
                sent += frames.count
            }
            nextTick = nextTick + tick
            try await clock.sleep(until: nextTick)
        }
        try await producer.flush()
        FileHandle.standardError.write(Data("traffic-sim: sent \(sent) results\n".utf8))
    }
}

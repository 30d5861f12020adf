import Durations
import Aggregator
import ArgumentParser
import Foundation
import KafkaClient
import RedisClient
import Synchronization
import LocalServices
import TrafficModel
import Simulation

/// What the exactly-once check costs (issue 21): the same backlog drained by the aggregator with
/// each message's Kafka offset checked against its camera's stored one, and without, alternating
/// in one run on one Redis (emptied before each), each on a topic and namespace of its own. Prints the drain rate and
/// redis-server's CPU per result (from /proc and from `INFO commandstats`) of each, and the ratios.
struct AppliedOffsetCostBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "exactly-once-cost",
        abstract: "Drain rate and Redis CPU per result with and without the redelivery check, in one run."
    )

    @Option(help: "Messages per drain.") var messages = 40_000
    @Option(help: "Cameras (one partition each on the embedded broker).") var cameras = 50
    @Option(help: "Share of alerts.") var alertRatio = 0.2
    @Option(help: "Drains per variant (alternating with and without the check, and which goes first).") var rounds = 6
    @Option(help: "Aggregator batch size.") var batchSize = 1_000

    struct Drain {
        var rate: Double
        /// redis-server CPU (user + system, from /proc) per result, µs.
        var cpuMicros: Double
        /// Command time per result from INFO commandstats (EXEC counted through its commands), µs.
        var commandMicros: Double
    }

    func run() async throws {
        quietLogging(.error)
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let kafka = try await EmbeddedKafka.start(topics: [])
        report("\(messages) results over \(cameras) cameras/partitions, \(Int(alertRatio * 100))% alerts, batch \(batchSize); \(rounds) drains each, alternating")
        var with: [Drain] = []
        var without: [Drain] = []
        for round in 0..<rounds {
            // Which goes first alternates too, so neither pays for following the other's teardown.
            for check in round % 2 == 0 ? [true, false] : [false, true] {
                let drain = try await self.drain(check: check, round: round, server: server, redis: redis, kafka: kafka)
                report(String(format: "  %@ check: %.0f results/s, redis-server %.2f µs CPU per result (%.2f µs of command time)",
                              check ? "with   " : "without", drain.rate, drain.cpuMicros, drain.commandMicros))
                if check { with.append(drain) } else { without.append(drain) }
            }
        }
        // The machine drifts between rounds more than the two variants differ, so each round's
        // pair is compared on its own and the per-round ratios summarised.
        func median(_ values: [Double]) -> Double {
            let sorted = values.sorted()
            return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        }
        func ratios(_ value: (Drain) -> Double) -> [Double] { zip(with, without).map { value($0) / value($1) } }
        for (name, value) in [("drain rate", \Drain.rate), ("redis CPU per result", \Drain.cpuMicros), ("command time per result", \Drain.commandMicros)] as [(String, KeyPath<Drain, Double>)] {
            let each = ratios { $0[keyPath: value] }
            report(String(format: "%@ with/without the check: median of the rounds' ratios %.3f (rounds: %@); medians %.2f vs %.2f",
                          name, median(each), each.map { String(format: "%.3f", $0) }.joined(separator: " "),
                          median(with.map { $0[keyPath: value] }), median(without.map { $0[keyPath: value] })))
        }
        server.stop()
    }

    /// One drain of a fresh backlog: first → last arrival at a pattern subscriber.
    func drain(check: Bool, round: Int, server: RedisServer, redis: RedisClient, kafka: EmbeddedKafka) async throws -> Drain {
        let tag = "\(check ? "with" : "without")-\(round)"
        let topic = "cost-\(tag)"
        try await kafka.createTopic(topic, partitions: cameras)
        try await kafka.createTopic(topic + ".dlq", partitions: 1)
        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrapServers
        config.topic = topic
        config.deadLetterTopic = topic + ".dlq"
        config.group = "cost-\(tag)"
        config.redisURL = server.url
        config.keys = KeySchema(namespace: "\(tag):")
        config.batchSize = batchSize
        config.checksAppliedOffsets = check
        config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties.merging(["fetch.wait.max.ms": "1"]) { $1 }

        let arrivals = Mutex<(count: Int, first: UInt64, last: UInt64)>((0, 0, 0))
        let subscriber = RedisSubscriber(configuration: server.configuration) { event in
            guard case .message = event else { return }
            let now = DispatchTime.now().uptimeNanoseconds
            arrivals.withLock { state in
                if state.count == 0 { state.first = now }
                state.count += 1
                state.last = now
            }
        }
        try await subscriber.psubscribe([config.keys.allCamerasPattern])

        // Every drain starts from an empty Redis, so a later one does not pay for a bigger data set.
        _ = try await redis.send(.raw(["FLUSHALL"]))
        var simulator = ResultSimulator(cameras: cameras, alertRatio: alertRatio, seed: UInt64(round + 1), runTag: tag)
        let base = Int64(Date().timeIntervalSince1970 * 1000)
        let frames = (0..<messages).map { simulator.next(at: base + Int64($0)) }
        var detections = RedisPipeline(capacity: frames.count)
        for frame in frames { detections.append(.set(config.keys.detection(frame.requestId), frame.detection, expiry: .seconds(3600))) }
        _ = try await redis.execute(detections)
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration(["linger.ms": "0", "queue.buffering.max.messages": "1000000"]))
        for frame in frames {
            try producer.produce(topic: topic, partition: Int32(frame.cameraId), key: Array(String(frame.cameraId).utf8), value: frame.assessment)
        }
        try await producer.flush(timeout: .seconds(120))
        _ = try await redis.send(.raw(["CONFIG", "RESETSTAT"]))

        let service = try AggregatorService(configuration: config, bootstrap: kafka.bootstrapServers)
        let running = Task { try await service.run() }
        var cpuAtFirst: Double?
        let deadline = ContinuousClock.now + .seconds(300)
        while arrivals.withLock({ $0.count }) < messages {
            if ContinuousClock.now > deadline { throw ValidationError("only \(arrivals.withLock { $0.count }) of \(messages) arrived") }
            if cpuAtFirst == nil, arrivals.withLock({ $0.count > 0 }) { cpuAtFirst = server.pid.flatMap(cpuSeconds(pid:)) }
            try await Task.sleep(for: .milliseconds(2))
        }
        let cpuAtLast = server.pid.flatMap(cpuSeconds(pid:)) ?? 0
        let (first, last) = arrivals.withLock { ($0.first, $0.last) }
        let stats = try await redis.send(.info("commandstats"))
        service.requestStop()
        try await running.value
        await subscriber.close()

        var commandMicros = 0.0
        for line in stats.split(separator: "\r\n") where line.hasPrefix("cmdstat_") && !line.hasPrefix("cmdstat_exec:") && !line.hasPrefix("cmdstat_config:") {
            if let usec = line.split(separator: ",").first(where: { $0.hasPrefix("usec=") }), let value = Double(usec.dropFirst(5)) { commandMicros += value }
        }
        return Drain(rate: Double(messages - 1) / (Double(last - first) / 1e9),
                     cpuMicros: (cpuAtLast - (cpuAtFirst ?? cpuAtLast)) / Double(messages) * 1e6,
                     commandMicros: commandMicros / Double(messages))
    }
}

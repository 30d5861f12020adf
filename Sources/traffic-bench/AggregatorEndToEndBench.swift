import Durations
import Aggregator
import ArgumentParser
import Foundation
import KafkaClient
import Logging
import RedisClient
import Synchronization
import LocalServices
import TrafficModel
import Simulation

/// End to end: Kafka (embedded) → aggregator (in process) → Redis → a PSUBSCRIBE client.
struct AggregatorEndToEndBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aggregator",
        abstract: "End-to-end throughput (backlog drain) and publish latency at a steady rate."
    )

    @Option(help: "Messages in the throughput run.") var messages = 50_000
    @Option(help: "Cameras (one partition each on the embedded broker).") var cameras = 50
    @Option(help: "Share of alerts.") var alertRatio = 0.2
    @Option(help: "Steady rate for the latency run (results/s).") var rate = 2_000
    @Option(help: "Seconds of the latency run.") var seconds = 5
    @Option(help: "Aggregator batch size.") var batchSize = 1_000
    @Option(name: .customLong("fetch-wait-ms"), help: "Consumer fetch.wait.max.ms (the mock answers empty fetches only after it, so it bounds the latency it adds).") var fetchWaitMs = 1

    func run() async throws {
        quietLogging(.error)
        let server = try await RedisServer()
        let topic = "bench-results"
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: cameras), .init(topic + ".dlq", partitions: 1)])
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration(["linger.ms": "0", "queue.buffering.max.messages": "1000000"]))
        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrapServers
        config.topic = topic
        config.deadLetterTopic = topic + ".dlq"
        config.redisURL = server.url
        config.batchSize = batchSize
        config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties.merging(["fetch.wait.max.ms": String(fetchWaitMs)]) { $1 }

        // Receive side: a PSUBSCRIBE client records when each requestId arrived.
        let arrivals = Mutex<[String: UInt64]>([:])
        let subscriber = RedisSubscriber(configuration: server.configuration) { event in
            guard case .message(let message) = event else { return }
            let now = DispatchTime.now().uptimeNanoseconds
            guard let id = requestID(in: message.payload) else { return }
            arrivals.withLock { $0[id] = now }
        }
        try await subscriber.psubscribe([config.keys.allCamerasPattern])

        var simulator = ResultSimulator(cameras: cameras, alertRatio: alertRatio, seed: 1, runTag: "bench")
        let base = Int64(Date().timeIntervalSince1970 * 1000)
        let frames = (0..<messages).map { simulator.next(at: base + Int64($0)) }
        let averageSize = frames.reduce(0) { $0 + $1.assessment.count + $1.detection.count } / frames.count
        var detections = RedisPipeline(capacity: frames.count)
        for frame in frames { detections.append(.set(config.keys.detection(frame.requestId), frame.detection, expiry: .seconds(3600))) }
        _ = try await redis.execute(detections)
        for frame in frames {
            try producer.produce(topic: topic, partition: Int32(frame.cameraId), key: Array(String(frame.cameraId).utf8), value: frame.assessment)
        }
        try await producer.flush(timeout: .seconds(120))
        report("\(messages) results (avg \(averageSize) B assessment+detection, \(Int(alertRatio * 100))% alerts) over \(cameras) cameras/partitions, batch \(batchSize)")

        // Throughput: the service drains the backlog; measured first → last arrival.
        let service = try AggregatorService(configuration: config, bootstrap: kafka.bootstrapServers)
        let running = Task { try await service.run() }
        // redis-server's CPU from the first arrival (sampled every 5 ms) to the last.
        var drainStart: (cpu: Double, at: ContinuousClock.Instant)?
        let deadline = ContinuousClock.now + .seconds(300)
        while arrivals.withLock({ $0.count }) < messages {
            if ContinuousClock.now > deadline { throw ValidationError("only \(arrivals.withLock { $0.count }) of \(messages) arrived") }
            if drainStart == nil, arrivals.withLock({ !$0.isEmpty }) { drainStart = (server.pid.flatMap(cpuSeconds(pid:)) ?? 0, .now) }
            try await Task.sleep(for: .milliseconds(5))
        }
        let times = arrivals.withLock { Array($0.values) }
        let span = Double(times.max()! - times.min()!) / 1e9
        let throughput = Double(messages - 1) / span
        let drainRedisBusy = drainStart.map { ((server.pid.flatMap(cpuSeconds(pid:)) ?? 0) - $0.cpu) / (ContinuousClock.now - $0.at).inSeconds } ?? 0
        report(String(format: "throughput (backlog drain): %.0f results/s  (%d in %.2f s); redis-server busy %.0f%% of a core", throughput, messages, span, drainRedisBusy * 100))
        // Redis' own CPU per result, from its command statistics (where the time goes).
        let stats = try await redis.send(.info("commandstats"))
        var redisMicros = 0.0
        for line in stats.split(separator: "\r\n") where line.hasPrefix("cmdstat_") {
            let fields = line.split(separator: ",")
            guard let usec = fields.first(where: { $0.hasPrefix("usec=") }),
                  let value = Double(usec.dropFirst(5)) else { continue }
            // EXEC's time includes the commands it ran, which are also listed on their own.
            if !line.hasPrefix("cmdstat_exec:") { redisMicros += value }
            if value > 10_000 { report("  redis \(line.prefix(while: { $0 != "," }).dropFirst(8)): \(String(format: "%.1f", value / Double(messages))) µs per result") }
        }
        report(String(format: "  redis total: %.1f µs of command time per result (EXEC counted through its commands; includes the benchmark's detection SETs)", redisMicros / Double(messages)))

        // Latency: a steady rate; each result's produce call → its arrival at the subscriber.
        let total = rate * seconds
        var latencyFrames: [ResultSimulator.Frame] = []
        var sim2 = ResultSimulator(cameras: cameras, alertRatio: alertRatio, seed: 2, runTag: "lat")
        for i in 0..<total { latencyFrames.append(sim2.next(at: base + Int64(messages + i))) }
        var pipeline = RedisPipeline()
        for frame in latencyFrames { pipeline.append(.set(config.keys.detection(frame.requestId), frame.detection, expiry: .seconds(3600))) }
        _ = try await redis.execute(pipeline)
        var sent: [String: UInt64] = [:]
        let clock = ContinuousClock()
        let start = clock.now
        let interval = Duration.seconds(1) / rate
        for (i, frame) in latencyFrames.enumerated() {
            try await clock.sleep(until: start + interval * i)
            sent[frame.requestId] = DispatchTime.now().uptimeNanoseconds
            try producer.produce(topic: topic, partition: Int32(frame.cameraId), key: Array(String(frame.cameraId).utf8), value: frame.assessment)
        }
        let latencyDeadline = ContinuousClock.now + .seconds(60)
        while arrivals.withLock({ $0.count }) < messages + total, ContinuousClock.now < latencyDeadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let got = arrivals.withLock { $0 }
        var latencies: [Double] = []
        for (id, at) in sent { if let arrived = got[id] { latencies.append(Double(arrived - at) / 1e6) } }
        latencies.sort()
        report(String(format: "latency at %d results/s (%d of %d arrived): p50 %.2f ms  p99 %.2f ms  max %.2f ms  (fetch.wait.max.ms=%d, linger.ms=0)", rate, latencies.count, total, percentile(latencies, 0.5), percentile(latencies, 0.99), latencies.last ?? 0, fetchWaitMs))

        service.requestStop()
        try await running.value

        // References: the same Redis traffic without the aggregator's own work (below).
        let reference = try await referenceRate(namespace: "ref:", base: base, redis: redis, subscriber: subscriber, arrivals: arrivals, config: config, redisPID: server.pid)
        report(String(format: "reference: the same Redis traffic (per batch an MGET, then MULTI/EXEC) without Kafka or the aggregator's CPU work: %.0f results/s, redis-server busy %.0f%% of a core; aggregator/reference = %.2f", reference.rate, reference.redisBusy * 100, throughput / reference.rate))

        await subscriber.close()
        server.stop()
    }

    /// Sends the Redis traffic of `messages` results (new ones, under `namespace`) as the
    /// aggregator would, but with every batch's transaction built before the clock starts: per
    /// batch one MGET of the detections, then the commands in MULTI … EXEC, to the same Redis and
    /// the same subscriber. What remains is Redis, the client library and the subscriber: roughly
    /// what any aggregator could reach on this machine (it is serial, so not a strict bound).
    /// Returns results/s (first send → last arrival) and the share of one core redis-server used
    /// meanwhile.
    func referenceRate(namespace: String, base: Int64, redis: RedisClient, subscriber: RedisSubscriber, arrivals: borrowing Mutex<[String: UInt64]>, config: AggregatorConfiguration, redisPID: Int32?) async throws -> (rate: Double, redisBusy: Double) {
        let keys = KeySchema(namespace: namespace)
        try await subscriber.psubscribe([keys.allCamerasPattern])
        var simulator = ResultSimulator(cameras: cameras, alertRatio: alertRatio, seed: 3, runTag: namespace)
        let frames = (0..<messages).map { simulator.next(at: base + Int64($0)) }
        var detections = RedisPipeline(capacity: frames.count)
        for frame in frames { detections.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(3600))) }
        _ = try await redis.execute(detections)
        let planner = WritePlanner(keys: keys, alertRule: config.alertRule)
        let writer = WriteTransaction(settings: config.writeSettings)
        var offsets: [Int: Int64] = [:]
        var batches: [(detectionKeys: [String], commands: [RedisArguments])] = []
        for first in stride(from: 0, to: frames.count, by: batchSize) {
            let batch = frames[first..<min(first + batchSize, frames.count)]
            let valid = try batch.map { try AssessmentMessage(validating: $0.assessment) }
            let plan = planner.plan(valid, detections: batch.map(\.detection))
            let (commands, _) = try writer.commands(for: plan, readReplies: PlannerBench.transactionReads(plan, counters: offsets))
            for publish in plan.publishes { offsets[plan.latest[publish.cameraSlot].camera, default: 0] += 1 }
            batches.append((planner.detectionKeys(valid), commands))
        }
        let arrivedBefore = arrivals.withLock { $0.count }
        let clock = ContinuousClock()
        let start = clock.now
        let redisBefore = redisPID.flatMap(cpuSeconds(pid:)) ?? 0
        for batch in batches {
            _ = try await redis.send(.mget(batch.detectionKeys))
            let commands = batch.commands
            _ = try await redis.transaction(watching: [], reads: RedisPipeline()) { _ throws(RedisError) in (commands, ()) }
        }
        let deadline = ContinuousClock.now + .seconds(120)
        while arrivals.withLock({ $0.count }) < arrivedBefore + messages, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(2))
        }
        let elapsed = (clock.now - start).inSeconds
        let redisBusy = ((redisPID.flatMap(cpuSeconds(pid:)) ?? 0) - redisBefore) / elapsed
        return (Double(messages) / elapsed, redisBusy)
    }
}

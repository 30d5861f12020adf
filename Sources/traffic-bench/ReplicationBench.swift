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

/// The aggregator against a Sentinel-managed primary with one replica: drain and latency with
/// `--min-replica-acks` 0 and 1 in the same run (the cost of waiting for the replica), then the
/// time a failover takes from the primary's death to the first result written on the new one.
struct ReplicationBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replication",
        abstract: "Cost of --min-replica-acks 1 vs 0 (drain, p99) and failover time, against a primary, a replica and three sentinels."
    )

    @Option(help: "Messages in each drain run.") var messages = 20_000
    @Option(help: "Cameras (one partition each on the embedded broker).") var cameras = 50
    @Option(help: "Steady rate of the latency runs (results/s).") var rate = 2_000
    @Option(help: "Seconds of each latency run.") var seconds = 5
    @Option(name: .customLong("down-after-ms"), help: "Sentinel down-after-milliseconds.") var downAfterMs = 1_000

    func run() async throws {
        quietLogging(.critical)
        let cluster = try await SentinelCluster(replicas: 1, downAfter: .milliseconds(downAfterMs), appendOnly: true)
        report("primary :\(cluster.primary.port), replica :\(cluster.replicas[0].port), 3 sentinels (down-after \(downAfterMs) ms); append-only, fsync every second")
        var figures: [Int: (drain: Double, p50: Double, p99: Double)] = [:]
        for acks in [0, 1] {
            let run = try await Run(cluster: cluster, cameras: cameras, acks: acks, tag: "acks\(acks)")
            let drain = try await run.drain(messages)
            let (p50, p99, arrived) = try await run.latency(rate: rate, seconds: seconds)
            report(String(format: "--min-replica-acks %d: drain %.0f results/s (%d); at %d/s p50 %.2f ms p99 %.2f ms (%d of %d arrived)", acks, drain, messages, rate, p50, p99, arrived, rate * seconds))
            figures[acks] = (drain, p50, p99)
            try await run.stop()
        }
        if let zero = figures[0], let one = figures[1] {
            report(String(format: "acks 1 / acks 0: drain %.2f, p99 %.2f", one.drain / zero.drain, one.p99 / zero.p99))
        }

        // Failover: a steady stream, the primary SIGKILLed; the sentinels promote the replica.
        let run = try await Run(cluster: cluster, cameras: cameras, acks: 1, tag: "failover")
        let stream = Task { try await run.stream(rate: 500, seconds: 60) }
        try await Task.sleep(for: .seconds(2))
        let old = cluster.primary.port
        let promoted = cluster.replicas[0].port
        let before = try await run.written(on: promoted)
        let killedAt = ContinuousClock.now
        cluster.primary.kill()
        var firstWrite: Duration?
        var promotedAt: Duration?
        try await waitUntil("a result written on the new primary", timeout: .seconds(120), every: .milliseconds(5)) {
            if promotedAt == nil, case .array(let role)? = try? await SentinelCluster.ask(port: promoted, ["ROLE"]), role.first?.string == "master" {
                promotedAt = ContinuousClock.now - killedAt
            }
            guard promotedAt != nil, let now = try? await run.written(on: promoted), now > before else { return false }
            firstWrite = ContinuousClock.now - killedAt
            return true
        }
        // The old primary comes back (as a restarted container would) and is made a replica:
        // then batches are acknowledged again.
        let restartAt = ContinuousClock.now
        try await cluster.primary.start()
        try await waitUntil("batches acknowledged again", timeout: .seconds(120), every: .milliseconds(10)) { run.service.health.redis }
        report(String(format: "failover: primary :%d killed → replica promoted after %.2f s → first result written on it after %.2f s; old primary restarted, batches acknowledged again %.2f s later",
                      old, (promotedAt ?? .zero).inSeconds, (firstWrite ?? .zero).inSeconds, (ContinuousClock.now - restartAt).inSeconds))
        stream.cancel()
        try await run.stop()
    }

    /// One aggregator on the cluster, its own topic and namespace, a subscriber timing arrivals.
    final class Run: Sendable {
        let kafka: EmbeddedKafka
        let producer: KafkaProducer
        let redis: RedisClient
        let service: AggregatorService
        let task: Task<Void, any Error>
        let subscriber: RedisSubscriber
        let arrivals = Arrivals()
        let keys: KeySchema
        let topic: String
        let cameras: Int
        let tag: String

        init(cluster: SentinelCluster, cameras: Int, acks: Int, tag: String) async throws {
            self.cameras = cameras
            self.tag = tag
            topic = "bench-\(tag)"
            kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: cameras), .init(topic + ".dlq", partitions: 1)])
            producer = try KafkaProducer(configuration: kafka.producerConfiguration(["linger.ms": "0", "queue.buffering.max.messages": "1000000"]))
            redis = try await RedisClient.connect(configuration: cluster.configuration)
            keys = KeySchema(namespace: "\(tag):")
            var config = AggregatorConfiguration()
            config.kafkaBootstrap = kafka.bootstrapServers
            config.topic = topic
            config.deadLetterTopic = topic + ".dlq"
            config.redisURL = cluster.url
            config.keys = keys
            config.batchSize = 1_000
            config.minimumReplicaAcks = acks
            config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties.merging(["fetch.wait.max.ms": "1"]) { $1 }
            config.metricsPort = 0
            let arrivals = self.arrivals
            subscriber = RedisSubscriber(configuration: cluster.configuration) { event in
                guard case .message(let message) = event else { return }
                let now = DispatchTime.now().uptimeNanoseconds
                guard let id = requestID(in: message.payload) else { return }
                arrivals.times.withLock { $0[id] = now }
            }
            try await subscriber.psubscribe([keys.allCamerasPattern])
            let service = try AggregatorService(configuration: config, bootstrap: kafka.bootstrapServers)
            self.service = service
            task = Task { try await service.run() }
        }

        func frames(_ count: Int, seed: UInt64, suffix: String) async throws -> [ResultSimulator.Frame] {
            var simulator = ResultSimulator(cameras: cameras, alertRatio: 0.2, seed: seed, runTag: tag + suffix)
            let base = Int64(Date().timeIntervalSince1970 * 1000)
            let frames = (0..<count).map { simulator.next(at: base + Int64($0)) }
            var detections = RedisPipeline(capacity: frames.count)
            for frame in frames { detections.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(3600))) }
            _ = try await redis.execute(detections)
            return frames
        }

        func produce(_ frame: ResultSimulator.Frame) throws {
            try producer.produce(topic: topic, partition: Int32(frame.cameraId), key: Array(String(frame.cameraId).utf8), value: frame.assessment)
        }

        /// A backlog of `count` results drained: results/s, first → last arrival.
        func drain(_ count: Int) async throws -> Double {
            let frames = try await frames(count, seed: 1, suffix: "d")
            let ids = Set(frames.map(\.requestId))
            for frame in frames { try produce(frame) }
            try await producer.flush(timeout: .seconds(120))
            try await waitUntil("\(count) results arrived", timeout: .seconds(300), every: .milliseconds(5)) { arrivals.times.withLock { $0.keys.filter(ids.contains).count } >= count }
            let times = arrivals.times.withLock { state in ids.compactMap { state[$0] } }
            return Double(count - 1) / (Double(times.max()! - times.min()!) / 1e9)
        }

        /// A steady `rate` for `seconds`: produce call → arrival, p50 and p99 in ms.
        func latency(rate: Int, seconds: Int) async throws -> (Double, Double, Int) {
            let frames = try await frames(rate * seconds, seed: 2, suffix: "l")
            var sent: [String: UInt64] = [:]
            let clock = ContinuousClock()
            let start = clock.now
            for (i, frame) in frames.enumerated() {
                try await clock.sleep(until: start + .seconds(1) / rate * i)
                sent[frame.requestId] = DispatchTime.now().uptimeNanoseconds
                try produce(frame)
            }
            let sentTimes = sent
            try? await waitUntil("the latency run arrived", timeout: .seconds(60), every: .milliseconds(20)) { arrivals.times.withLock { state in sentTimes.keys.allSatisfy { state[$0] != nil } } }
            let got = arrivals.times.withLock { $0 }
            let latencies = sent.compactMap { id, at in got[id].map { Double($0 - at) / 1e6 } }.sorted()
            return (percentile(latencies, 0.5), percentile(latencies, 0.99), latencies.count)
        }

        /// Results at `rate` until cancelled.
        func stream(rate: Int, seconds: Int) async throws {
            let frames = try await frames(rate * seconds, seed: 3, suffix: "s")
            let clock = ContinuousClock()
            let start = clock.now
            for (i, frame) in frames.enumerated() {
                try await clock.sleep(until: start + .seconds(1) / rate * i)
                try produce(frame)
            }
        }

        /// The sum of this run's position counters on one server.
        func written(on port: Int) async throws -> Int {
            try await SentinelCluster.sum(of: "offset", in: (0..<cameras).map { keys.position($0) }, on: port)
        }

        func stop() async throws {
            service.requestStop()
            _ = try? await task.value
            await subscriber.close()
            await redis.close()
        }
    }
}

/// When each request id arrived at a subscriber.
final class Arrivals: Sendable {
    let times = Mutex<[String: UInt64]>([:])
}

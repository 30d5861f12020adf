import Durations
import Aggregator
import ArgumentParser
import Foundation
import KafkaClient
import RedisClient
import LocalServices
import TrafficModel
import Simulation

/// What Redis Cluster costs (issue 22), in one run on this machine: the same backlog drained
/// into one redis-server and into a cluster of three primaries (no replicas, so both sides do
/// the same work), with every server's CPU (from /proc) summed per result; then PUBLISH against
/// SPUBLISH of the same messages on a cluster with replicas, and what each costs the other
/// nodes. On two cores this measures cost, not capacity: the gain of more primaries needs cores
/// of their own (docs/benchmarks.md has the arithmetic).
struct ClusterCostBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster-cost",
        abstract: "Redis CPU per result and drain rate, one server vs a 3-primary cluster; PUBLISH vs SPUBLISH on the other nodes."
    )

    @Option(help: "Messages per drain.") var messages = 30_000
    @Option(help: "Cameras (one partition each on the embedded broker).") var cameras = 50
    @Option(help: "Drains per setup (alternating).") var rounds = 2
    @Option(help: "Messages of the PUBLISH/SPUBLISH comparison.") var publishes = 50_000

    func run() async throws {
        quietLogging(.error)
        report("\(messages) results over \(cameras) cameras, batch 1000; \(rounds) drains per setup, alternating")
        let single = try await RedisServer()
        let cluster = try await RedisCluster(replicasPerPrimary: 0, appendOnly: false)
        let kafka = try await EmbeddedKafka.start(topics: [])
        var rates: [String: [Double]] = [:]
        var micros: [String: [Double]] = [:]
        for round in 0..<rounds {
            for (name, url, pids) in [("one server", single.url, [single.pid]), ("cluster of 3", cluster.url, cluster.nodes.map(\.pid))] {
                let (rate, cpu) = try await drain(url: url, pids: pids.compactMap { $0 }, tag: "\(round)-\(name.prefix(3))", kafka: kafka)
                report(String(format: "  %@: %.0f results/s, Redis CPU %.2f µs per result (all servers)", name, rate, cpu))
                rates[name, default: []].append(rate)
                micros[name, default: []].append(cpu)
            }
        }
        func mean(_ values: [Double]) -> Double { values.reduce(0, +) / Double(max(1, values.count)) }
        let (singleRate, clusterRate) = (mean(rates["one server"] ?? []), mean(rates["cluster of 3"] ?? []))
        let (singleCPU, clusterCPU) = (mean(micros["one server"] ?? []), mean(micros["cluster of 3"] ?? []))
        report(String(format: "means: drain %.0f vs %.0f results/s (cluster/one = %.2f); Redis CPU %.2f vs %.2f µs per result (%.2f)",
                      singleRate, clusterRate, clusterRate / singleRate, singleCPU, clusterCPU, clusterCPU / singleCPU))
        single.stop()
        cluster.stop()

        // PUBLISH travels the cluster bus to every node; SPUBLISH stays in its shard.
        let replicated = try await RedisCluster(replicasPerPrimary: 1, appendOnly: false)
        let client = try await RedisClusterClient.connect(configuration: replicated.configuration)
        let channel = "bench:{7}"
        guard let owner = client.primary(forSlot: HashSlot.of(channel)) else { throw ValidationError("no primary serves \(channel)") }
        let payload = [UInt8](repeating: UInt8(ascii: "x"), count: 1_024)
        for command in ["PUBLISH", "SPUBLISH"] {
            let before = replicated.nodes.map { ($0.port, $0.pid.flatMap(cpuSeconds(pid:)) ?? 0) }
            var sent = 0
            while sent < publishes {
                var pipeline = RedisPipeline(capacity: 1_000)
                for _ in 0..<min(1_000, publishes - sent) {
                    var arguments = RedisArguments([command, channel])
                    arguments.append(payload)
                    _ = pipeline.append(RedisCommand<RedisReply>.raw(arguments))
                }
                sent += pipeline.count
                _ = try await client.node(owner).execute(pipeline)
            }
            try await Task.sleep(for: .milliseconds(500)) // the bus delivers to the other nodes after the replies
            let after = Dictionary(uniqueKeysWithValues: replicated.nodes.map { ($0.port, $0.pid.flatMap(cpuSeconds(pid:)) ?? 0) })
            var ownerMicros = 0.0
            var others = 0.0
            for (port, cpu) in before {
                let used = ((after[port] ?? cpu) - cpu) / Double(publishes) * 1e6
                if port == owner.port { ownerMicros = used } else { others += used }
            }
            report(String(format: "%@ of %d × 1 KiB to one channel: %.2f µs per message on its primary, %.2f µs on the other %d nodes together",
                          command, publishes, ownerMicros, others, replicated.nodes.count - 1))
        }
        await client.close()
        replicated.stop()
    }

    /// One drain of a fresh backlog through an aggregator writing to `url`: the rate from the
    /// first result applied to the last, and the servers' CPU per result over that span.
    func drain(url: String, pids: [Int32], tag: String, kafka: EmbeddedKafka) async throws -> (rate: Double, cpuMicros: Double) {
        let topic = "cost-\(tag)".replacingOccurrences(of: " ", with: "-")
        try await kafka.createTopic(topic, partitions: cameras)
        try await kafka.createTopic(topic + ".dlq", partitions: 1)
        let configuration = try RedisConfiguration(url: url)
        let redis = try await connectRedis(configuration: configuration)
        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrapServers
        config.topic = topic
        config.deadLetterTopic = topic + ".dlq"
        config.group = topic
        config.redisURL = url
        config.keys = KeySchema(namespace: "\(topic):")
        config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties.merging(["fetch.wait.max.ms": "1"]) { $1 }
        let keys = KeySchema(namespace: config.keys.namespace, hashTagged: configuration.isCluster)
        var simulator = ResultSimulator(cameras: cameras, alertRatio: 0.2, seed: 5, runTag: topic)
        let base = Int64(Date().timeIntervalSince1970 * 1000)
        let frames = (0..<messages).map { simulator.next(at: base + Int64($0)) }
        var detections = RedisPipeline(capacity: frames.count)
        for frame in frames { detections.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
        _ = try await redis.execute(detections, routedBy: frames.map { keys.detection($0.requestId) })
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration(["linger.ms": "0", "queue.buffering.max.messages": "1000000"]))
        for frame in frames {
            try producer.produce(topic: topic, partition: Int32(frame.cameraId), key: Array(String(frame.cameraId).utf8), value: frame.assessment)
        }
        try await producer.flush(timeout: .seconds(120))
        func applied() async throws -> Int {
            var pipeline = RedisPipeline(capacity: cameras)
            for camera in 0..<cameras { _ = pipeline.append(RedisCommand<[UInt8]?>.hget(keys.position(camera), field: "offset")) }
            return try await redis.execute(pipeline, routedBy: (0..<cameras).map { keys.position($0) }).compactMap { $0.string.flatMap { Int($0) } }.reduce(0, +)
        }
        func cpu() -> Double { pids.compactMap(cpuSeconds(pid:)).reduce(0, +) }
        let service = try AggregatorService(configuration: config, bootstrap: kafka.bootstrapServers)
        let running = Task { try await service.run() }
        let clock = ContinuousClock()
        var start: (at: ContinuousClock.Instant, cpu: Double, done: Int)?
        let deadline = clock.now + .seconds(300)
        var done = 0
        while done < messages {
            guard clock.now < deadline else { throw ValidationError("only \(done) of \(messages) applied") }
            done = try await applied()
            if start == nil, done > 0 { start = (clock.now, cpu(), done) }
            try await Task.sleep(for: .milliseconds(5))
        }
        let end = (at: clock.now, cpu: cpu())
        service.requestStop()
        try await running.value
        await redis.close()
        let begun = start ?? (end.at, end.cpu, 0)
        let counted = Double(messages - begun.done)
        return (counted / (end.at - begun.at).inSeconds, (end.cpu - begun.cpu) / max(1, counted) * 1e6)
    }
}

import Foundation
import KafkaClient
import RedisClient
import Testing
import TestSupport
import TrafficModel
#if canImport(Glibc)
import Glibc
import Simulation
#endif

/// The `traffic-aggregator` executable as operators run it: signals, restarts, HTTP endpoints,
/// and interop with kcat and redis-cli.
@Suite struct AggregatorProcessTests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("traffic-aggregator").path
    }

    struct Setup {
        let h: AggregatorHarness
        let metricsPort: Int
        let log: String

        func launch() throws -> ChildProcess {
            try ChildProcess(AggregatorProcessTests.binary, [
                "run", "--kafka-bootstrap", h.kafka.bootstrapServers, "--topic", h.topic, "--dlq-topic", h.dlqTopic,
                "--group", h.configuration.group, "--redis-url", h.redisServer.url, "--namespace", h.keys.namespace,
                "--alert-list-length", "10000", "--history-length", "10000", "--batch-size", "200", "--metrics-port", String(metricsPort), "--metrics-host", "127.0.0.1",
                "-X", "fetch.wait.max.ms=10", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500",
            ], output: .appendToFile(log))
        }
    }

    func setup() async throws -> Setup {
        let h = try await AggregatorHarness(partitions: 4)
        return Setup(h: h, metricsPort: try FreePort.find(), log: FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("aggregator") + ".log").path)
    }

    func frames(_ count: Int, tag: String) -> [ResultSimulator.Frame] {
        var simulator = ResultSimulator(cameras: 20, alertRatio: 0.3, seed: 11, runTag: tag)
        return (0..<count).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
    }

    func expectExactEndState(_ h: AggregatorHarness, _ frames: [ResultSimulator.Frame]) async throws {
        for (camera, mine) in Dictionary(grouping: frames, by: \.cameraId) {
            let alerts = try await h.alerts(camera)
            #expect(alerts.count == Set(alerts).count, "camera \(camera): duplicate alerts")
            #expect(Set(alerts) == Set(mine.filter(\.isAlert).map(\.requestId)), "camera \(camera): alerts differ")
            #expect(AggregatorHarness.requestId(try #require(try await h.latest(camera))) == mine.last?.requestId)
        }
    }

    @Test func sigtermFinishesTheBatchCommitsAndExitsZero() async throws {
        let s = try await setup()
        let all = frames(6_000, tag: "sigterm")
        try await s.h.send(all)
        let first = try s.launch()
        try await waitUntil("the aggregator processed something", timeout: .seconds(30)) {
            (try? await s.h.redis.send(.exists([s.h.keys.latest(all[0].cameraId)]))) == 1 // try?: an error is "not yet" while Redis restarts
        }
        let health = try await httpGet(port: s.metricsPort, path: "/healthz")
        #expect(health.status == 200 && health.text.contains(#""ready":true"#), "\(health.text)")
        let metrics = try await httpGet(port: s.metricsPort, path: "/metrics")
        #expect(metrics.text.contains("aggregator_messages_consumed_total"))
        first.signal(SIGTERM)
        let status = try await first.wait(timeout: .seconds(60))
        #expect(status == 0, "exit status after SIGTERM; log: \(s.log)")
        // The graceful path, in order: the shutdown begins, the batch in flight is finished and
        // the offsets are committed before the process leaves.
        let log = try String(contentsOfFile: s.log, encoding: .utf8)
        let steps = ["shutting down: finishing the in-flight batch", "aggregator stopped; offsets committed"].compactMap { log.range(of: $0)?.lowerBound }
        #expect(steps.count == 2 && steps == steps.sorted(), "shutdown, then the final commit: \(log.suffix(600))")
        #expect(!log.contains("final commit failed"), "\(log.suffix(600))")
        // A new instance of the same group picks up at the committed offsets.
        let second = try s.launch()
        try await s.h.waitUntilCommitted(timeout: .seconds(60))
        try await expectExactEndState(s.h, all)
        second.signal(SIGTERM)
        #expect(try await second.wait(timeout: .seconds(60)) == 0)
    }

    /// The sum of every camera's result counter: how many results are in Redis.
    func applied(_ h: AggregatorHarness, cameras: Int) async throws -> Int {
        var pipeline = RedisPipeline()
        for camera in 0..<cameras { pipeline.append(.hget(h.keys.position(camera), field: "offset")) }
        return try await h.redis.execute(pipeline).compactMap { $0.string.flatMap { Int($0) } }.reduce(0, +)
    }

    @Test func sigkillMidStreamTwiceThenRestartAppliesEveryResultOnce() async throws {
        let s = try await setup()
        let all = frames(20_000, tag: "sigkill")
        let published = try await PublishedRecorder(s.h)
        try await s.h.send(all)
        // Killed twice while it writes: everything since its last commit is read again by the
        // next instance, and each camera's stored offset tells what was applied.
        for threshold in [3_000, 9_000] {
            let process = try s.launch()
            try await waitUntil("\(threshold) results applied", timeout: .seconds(90), every: .milliseconds(5)) {
                try await applied(s.h, cameras: 20) >= threshold
            }
            process.signal(SIGKILL)
            _ = try await process.wait(timeout: .seconds(60))
        }
        let last = try s.launch()
        try await s.h.waitUntilCommitted(timeout: .seconds(120))
        let skipped = try await s.h.expectExactlyOnce(all, published: published)
        #expect(skipped > 0, "the kills left written, uncommitted results to be read again: the check was exercised")
        last.signal(SIGTERM)
        #expect(try await last.wait(timeout: .seconds(60)) == 0)
        await published.close()
    }

    /// A second member joins (a process), takes partitions, and is SIGKILLed: the first gets its
    /// partitions back after the session timeout and reads what the dead one had not committed.
    @Test func aSecondMemberSigkilledAfterTheRebalanceChangesNothingTwice() async throws {
        let s = try await setup()
        let all = frames(16_000, tag: "member")
        let published = try await PublishedRecorder(s.h)
        var detections = RedisPipeline()
        for frame in all { detections.append(.set(s.h.keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
        _ = try await s.h.redis.execute(detections)
        var next = 0
        func produceMore(_ count: Int = 200) async throws {
            guard next < all.count else { return }
            for frame in all[next..<min(next + count, all.count)] { try s.h.produce(frame.assessment, camera: frame.cameraId) }
            try await s.h.flush()
            next = min(next + count, all.count)
            try await Task.sleep(for: .milliseconds(40)) // paced: the stream flows across the rebalance
        }
        let first = try s.launch()
        try await waitUntil("the first member writes", timeout: .seconds(60), every: .milliseconds(5)) {
            try await produceMore()
            return try await applied(s.h, cameras: 20) > 0
        }
        let secondPort = try FreePort.find()
        let second = try ChildProcess(AggregatorProcessTests.binary, [
            "run", "--kafka-bootstrap", s.h.kafka.bootstrapServers, "--topic", s.h.topic, "--dlq-topic", s.h.dlqTopic,
            "--group", s.h.configuration.group, "--redis-url", s.h.redisServer.url, "--namespace", s.h.keys.namespace,
            "--alert-list-length", "10000", "--history-length", "10000", "--batch-size", "200", "--metrics-port", String(secondPort), "--metrics-host", "127.0.0.1",
            "-X", "fetch.wait.max.ms=10", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500",
            // Never commits before the kill: everything it wrote is read again by the first member,
            // wherever the kill lands (with the 1 s default it may land just after a commit).
            "-X", "auto.commit.interval.ms=600000",
        ], output: .appendToFile(s.log + ".second"))
        // The stream flows slowly until the group gave the second member partitions (the
        // embedded broker takes seconds to rebalance), then faster until it has written some.
        try await waitUntil("the second member was assigned partitions", timeout: .seconds(90), every: .milliseconds(10)) {
            if next < all.count / 2 { try await produceMore(50) }
            let log = (try? String(contentsOfFile: s.log + ".second", encoding: .utf8)) ?? "" // try?: no log yet is "not yet"
            return log.contains("partitions=[\(s.h.topic)[")
        }
        try await waitUntil("the second member writes", timeout: .seconds(60), every: .milliseconds(10)) {
            try await produceMore()
            guard let metrics = try? await httpGet(port: secondPort, path: "/metrics") else { return false } // try?: not listening yet
            return metrics.text.split(separator: "\n").first { $0.hasPrefix("aggregator_results_published_total ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0 > 0
        }
        for _ in 0..<5 { try await produceMore() }
        second.signal(SIGKILL) // with writes in flight and offsets uncommitted
        _ = try await second.wait(timeout: .seconds(60))
        while next < all.count { try await produceMore(400) }
        try await s.h.waitUntilCommitted(timeout: .seconds(120))
        let skipped = try await s.h.expectExactlyOnce(all, published: published)
        #expect(skipped > 0, "the dead member's written, uncommitted results were read again: the check was exercised")
        first.signal(SIGTERM)
        #expect(try await first.wait(timeout: .seconds(60)) == 0)
        await published.close()
    }

    /// Never skipped: the test command installs kcat and redis-cli.
    @Test func kcatInRedisCliOut() async throws {
        try #require(which("kcat") != nil && which("redis-cli") != nil, "needs kcat and redis-cli (scripts/install-deps.sh installs them)")
        let s = try await setup()
        let process = try s.launch()
        let lines = [
            assessment("kcat-1", camera: 12, time: "2025-10-20T10:30:00Z", level: "critical"),
            assessment("kcat-2", camera: 12, time: "2025-10-20T10:30:01Z", level: "low"),
        ]
        let produced = try await runCommand(which("kcat")!, ["-b", s.h.kafka.bootstrapServers, "-t", s.h.topic, "-P", "-K", "|"], input: lines.map { "12|\($0)" }.joined(separator: "\n") + "\n")
        #expect(produced.status == 0, "\(produced.stderr)")
        try await s.h.waitUntilCommitted(timeout: .seconds(60))
        let cli = which("redis-cli")!
        let port = String(s.h.redisServer.port)
        let latest = try await runCommand(cli, ["-p", port, "GET", "\(s.h.keys.namespace)camera:12:latest"])
        #expect(latest.stdout.contains(#""requestId":"kcat-2""#) && latest.stdout.contains(#""detectionMissing":true"#), "\(latest.stdout)")
        let ttl = try await runCommand(cli, ["-p", port, "TTL", "\(s.h.keys.namespace)camera:12:latest"])
        #expect((1...300).contains(Int(ttl.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0), "a TTL, never longer than the configured 300 s")
        let alerts = try await runCommand(cli, ["-p", port, "LRANGE", "\(s.h.keys.namespace)alerts:12", "0", "-1"])
        #expect(alerts.stdout.contains(#""requestId":"kcat-1""#) && !alerts.stdout.contains("kcat-2"), "\(alerts.stdout)")
        process.signal(SIGTERM)
        #expect(try await process.wait(timeout: .seconds(60)) == 0)
    }
}

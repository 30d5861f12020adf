import Foundation
import Logging
import KafkaClient
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation

@Suite struct AggregatorFaultTests {
    @Test func redisKilledAndRestartedMidStreamAppliesEveryResultOnce() async throws {
        // Acknowledged writes must survive the crash, as with production's append-only file.
        let h = try await AggregatorHarness(partitions: 8, redisArguments: ["--appendonly", "yes", "--appendfsync", "always"]) {
            $0.batchSize = 500
            $0.alertListLength = 10_000 // keep every alert so the check can be exact
        }
        let published = try await PublishedRecorder(h)
        try h.start()
        var simulator = ResultSimulator(cameras: 50, alertRatio: 0.2, seed: 5, runTag: "redisfault")
        let frames = (0..<20_000).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        // Detections are written before the outage; the stream is produced across it.
        var detections = RedisPipeline()
        for frame in frames { detections.append(.set(h.keys.detection(frame.requestId), frame.detection)) }
        _ = try await h.redis.execute(detections)
        for frame in frames.prefix(8_000) { try h.produce(frame.assessment, camera: frame.cameraId) }
        try await h.flush()
        try await waitUntil("some results written", timeout: .seconds(30)) {
            (try? await h.redis.send(.exists([h.keys.latest(frames[0].cameraId)]))) == 1 // try?: an error is "not yet" while Redis restarts
        }
        // Crash Redis, keep producing, bring it back.
        h.redisServer.kill()
        for frame in frames.dropFirst(8_000) { try h.produce(frame.assessment, camera: frame.cameraId) }
        try await h.flush()
        try await waitUntil("the aggregator noticed", timeout: .seconds(10)) { h.service?.health.redis == false }
        try await h.redisServer.start()
        try await h.waitUntilCommitted(timeout: .seconds(120))
        try await waitUntil("the test's own client reconnected") { (try? await h.redis.send(.ping())) == "PONG" } // try?: an error is "not yet" while Redis comes back

        // A batch whose EXEC ran just before the kill, its reply lost, was written again: skipped.
        try await h.expectExactlyOnce(frames, published: published)
        try await h.stop()
        await published.close()
    }

    @Test func brokerSetDownAndUpResumesWithoutLoss() async throws {
        let h = try await AggregatorHarness(partitions: 4) { $0.alertListLength = 10_000 }
        try h.start()
        var simulator = ResultSimulator(cameras: 10, alertRatio: 0.5, seed: 3, runTag: "brokerfault")
        let frames = (0..<2_000).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        try await h.send(Array(frames.prefix(1_000)))
        try await h.waitUntilCommitted()
        try await h.kafka.setBrokerDown()
        var detections = RedisPipeline()
        for frame in frames.dropFirst(1_000) { detections.append(.set(h.keys.detection(frame.requestId), frame.detection)) }
        _ = try await h.redis.execute(detections)
        for frame in frames.dropFirst(1_000) { try h.produce(frame.assessment, camera: frame.cameraId) }
        try await h.kafka.setBrokerUp()
        try await h.producer.flush(timeout: .seconds(60))
        try await h.waitUntilCommitted(timeout: .seconds(120))
        #expect(h.producer.unreportedFailures == 0)
        for camera in 0..<10 {
            let mine = frames.filter { $0.cameraId == camera }
            let got = Set(try await h.alerts(camera))
            let want = Set(mine.filter(\.isAlert).map(\.requestId))
            #expect(got == want, "camera \(camera): missing \(want.subtracting(got).sorted().prefix(5)) extra \(got.subtracting(want).count)")
        }
        try await h.stop()
    }

    @Test func aSecondAggregatorJoinsAndLeavesMidStreamAppliesEveryResultOnce() async throws {
        let h = try await AggregatorHarness(partitions: 8) {
            $0.batchSize = 200
            $0.alertListLength = 10_000 // keep every alert and every result so the checks can be exact
            $0.historyLength = 10_000
        }
        try h.start()
        var simulator = ResultSimulator(cameras: 20, alertRatio: 0.2, seed: 9, runTag: "scale")
        // Enough that the stream is still flowing when the second member is admitted (the mock
        // rebalances in a few seconds); whatever is left is produced after it has left.
        let frames = (0..<30_000).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        var detections = RedisPipeline()
        for frame in frames { detections.append(.set(h.keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
        _ = try await h.redis.execute(detections)
        func produce(_ part: ArraySlice<ResultSimulator.Frame>) async throws {
            for frame in part { try h.produce(frame.assessment, camera: frame.cameraId) }
            try await h.flush()
        }

        try await produce(frames[0..<3_000])
        try await waitUntil("the first aggregator is writing", timeout: .seconds(30)) {
            (try? await h.redis.send(.exists([h.keys.latest(frames[0].cameraId)]))) == 1 // try?: an error is "not yet" while Redis restarts
        }
        // Scale out, then in, while results keep flowing (300 every 50 ms).
        let second = try AggregatorService(configuration: h.configuration, bootstrap: h.kafka.bootstrapServers, logger: Logger(label: "test.aggregator.2"))
        let secondRun = Task { try await second.run() }
        func consumed(_ service: AggregatorService) -> Double {
            String(decoding: service.metrics.render(), as: UTF8.self).split(separator: "\n")
                .first { $0.hasPrefix("aggregator_messages_consumed_total ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
        var next = 3_000
        func produceMore() async throws {
            guard next < frames.count else { return }
            try await produce(frames[next..<min(next + 300, frames.count)])
            next += 300
            try await Task.sleep(for: .milliseconds(50))
        }
        try await waitUntil("the second member took partitions and processes messages", timeout: .seconds(60), every: .milliseconds(10)) {
            try await produceMore()
            return consumed(second) > 0
        }
        try await produceMore()
        try await produceMore()
        second.requestStop() // leaves with a batch in flight while messages keep arriving
        while next < frames.count { try await produceMore() }
        try await secondRun.value
        try await h.waitUntilCommitted(timeout: .seconds(90))
        try await h.stop()
        #expect(next == frames.count)

        for (camera, mine) in Dictionary(grouping: frames, by: \.cameraId) {
            let history = try await h.redis.send(.xrange(h.keys.history(camera)))
            let payloads = history.compactMap { $0["r"] }
            let offsets = payloads.compactMap { ResultPosition.parse(prefixOf: $0)?.offset }
            #expect(offsets == Array(1...Int64(offsets.count)), "camera \(camera): one sequence, every offset once, whichever member wrote")
            #expect(payloads.count == mine.count, "camera \(camera): every result once")
        }
        try await h.expectExactlyOnce(frames, published: nil)
    }

    /// `--min-replica-acks 1` on a primary without a replica, then with one, then with that one
    /// stopped: each says why progress stopped, and Redis counts as up throughout.
    @Test func unmetReplicaAcknowledgementsSayWhy() async throws {
        // No 5 s pause before a replica's first sync.
        let h = try await AggregatorHarness(partitions: 1, redisArguments: ["--repl-diskless-sync-delay", "0"]) {
            $0.minimumReplicaAcks = 1
            $0.replicaAckTimeout = .milliseconds(200)
        }
        try h.start()
        var simulator = ResultSimulator(cameras: 3, alertRatio: 0.2, seed: 21, runTag: "acks")
        let frames = (0..<40).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        try await h.send(Array(frames.prefix(20)))
        func shortfall() -> ReplicaShortfall? { h.service?.health.replicas }
        try await waitUntil("no replica connected", timeout: .seconds(30), every: .milliseconds(20)) {
            shortfall()?.cause == .replicasMissing && shortfall()?.connected == 0
        }
        let service = try #require(h.service)
        let waiting = service.health
        #expect(waiting.redis && !waiting.ready, "Redis answers: not down, but not ready: \(waiting.json)")
        #expect(waiting.reasons.contains { $0.contains("no replica connected to the primary") }, "\(waiting.reasons)")
        let rendered = String(decoding: service.metrics.render(), as: UTF8.self)
        #expect(rendered.contains("aggregator_redis_up 1") && rendered.contains("aggregator_replica_acks_unmet 1"))

        // A replica connects: the waiting batch is acknowledged and the service ready again.
        let replica = try await RedisServer(extraArguments: ["--replicaof", "127.0.0.1", String(h.redisServer.port)])
        try await h.waitUntilCommitted(timeout: .seconds(60))
        try await waitUntil("ready again", timeout: .seconds(30)) { h.service?.health.ready == true }

        // The replica stops reading: connected, but lagging.
        let pid = try #require(replica.pid)
        kill(pid, SIGSTOP)
        defer { kill(pid, SIGCONT) } // a stopped server left behind would outlive a failed test
        try await h.send(Array(frames.dropFirst(20)))
        try await waitUntil("the replica lags", timeout: .seconds(30), every: .milliseconds(20)) { shortfall()?.cause == .replicasLagging }
        #expect(shortfall()?.replicas.first?.address == "127.0.0.1:\(replica.port)", "the replica seen is named")
        kill(pid, SIGCONT)
        try await h.waitUntilCommitted(timeout: .seconds(60))
        try await waitUntil("ready again", timeout: .seconds(30)) { h.service?.health.ready == true }
        for (camera, mine) in Dictionary(grouping: frames, by: \.cameraId) {
            #expect(AggregatorHarness.requestId(try #require(try await h.latest(camera))) == mine.last?.requestId)
        }
        try await h.stop()
    }

    /// The embedded broker starts every topic at offset 0: an aggregator restarted on a new one,
    /// on the same Redis, finds its cameras' stored offsets past the partitions' ends. That is a
    /// recreated topic, not a redelivery: its messages are applied and the reset counted.
    @Test func aRecreatedTopicIsAppliedNotSkipped() async throws {
        let h = try await AggregatorHarness(partitions: 1) { $0.historyLength = 10_000 }
        var simulator = ResultSimulator(cameras: 3, alertRatio: 0.3, seed: 41, runTag: "recreated")
        let before = (0..<60).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        try await h.send(before)
        try h.start()
        try await h.waitUntilCommitted()
        try await h.stop()

        let broker = try await EmbeddedKafka.start(topics: [.init(h.topic, partitions: 1), .init(h.dlqTopic, partitions: 1)])
        let after = (0..<12).map { simulator.next(at: 1_760_000_100_000 + Int64($0)) }
        var detections = RedisPipeline()
        for frame in after { detections.append(.set(h.keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
        _ = try await h.redis.execute(detections)
        let producer = try KafkaProducer(configuration: broker.producerConfiguration())
        for frame in after { try producer.produce(topic: h.topic, key: Array(String(frame.cameraId).utf8), value: frame.assessment) }
        try await producer.flush()
        var config = h.configuration
        config.kafkaBootstrap = broker.bootstrapServers
        let service = try AggregatorService(configuration: config, bootstrap: broker.bootstrapServers, logger: Logger(label: "test.aggregator.recreated"))
        let running = Task { try await service.run() }
        try await waitUntil("the new topic's results applied", timeout: .seconds(60)) {
            var total = 0
            for camera in 0..<3 { total += try await h.redis.send(.xrange(h.keys.history(camera))).count }
            return total == before.count + after.count
        }
        // Counted once the writes' outcomes are recorded, after Redis has them: read after the
        // service stopped (its last batch recorded too).
        service.requestStop()
        try await running.value
        let metrics = String(decoding: service.metrics.render(), as: UTF8.self)
        #expect(metrics.contains("aggregator_offset_resets_total ") && !metrics.contains("aggregator_offset_resets_total 0"), "the reset is counted")
        #expect(metrics.contains("aggregator_redelivered_skipped_total 0"), "nothing taken for a redelivery")
        try await h.expectExactlyOnce(before + after, published: nil)
    }
}

import Foundation
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation

/// The aggregator across a Redis failover (issue 14): a primary, one replica and three
/// sentinels; the primary is SIGKILLed while 20,000 results stream through.
@Suite(.serialized) struct AggregatorFailoverTests {
    // One at a time: each runs five redis processes, a broker and a busy aggregator.

    /// What survived on the promoted replica.
    struct Survey {
        var missingResults = 0
        var missingAlerts = 0
        var duplicateAlerts = 0
        var staleLatest = 0
        var historyGaps = 0
        /// Results the primary wrote while its replica was cut off, just before it died.
        var writtenUnreplicated = 0
        /// Failovers the sentinels made (1 expected; more means a stall was taken for a death).
        var failovers: Int?
        /// A few of the missing results: camera, request id, index in the stream.
        var missingSample: [String] = []
    }

    /// Streams 20,000 results through an aggregator with `acks` required replica
    /// acknowledgements, kills the primary a quarter of the way, and surveys the new primary.
    func runThroughFailover(acks: Int) async throws -> Survey {
        let cluster = try await SentinelCluster()
        let h = try await AggregatorHarness(partitions: 8, sentinels: cluster) { config in
            config.minimumReplicaAcks = acks
            config.replicaAckTimeout = .seconds(2)
            config.batchSize = 500
        }
        var simulator = ResultSimulator(cameras: 50, alertRatio: 0.2, seed: 14, runTag: "failover")
        let start: Int64 = 1_760_000_000_000
        let frames = (0..<20_000).map { simulator.next(at: start + Int64($0)) }
        // Detections first, on the replica too, so a promoted replica merges like the primary.
        for chunk in stride(from: 0, to: frames.count, by: 2_000) {
            var pipeline = RedisPipeline()
            for frame in frames[chunk..<min(chunk + 2_000, frames.count)] { pipeline.append(.set(h.keys.detection(frame.requestId), frame.detection, expiry: .seconds(600))) }
            _ = try await h.redis.execute(pipeline)
        }
        #expect(try await h.redis.send(.raw(["WAIT", "1", "10000"])) == .integer(1))
        try h.start()
        for frame in frames { try h.produce(frame.assessment, camera: frame.cameraId) }
        try await h.flush()

        // A quarter through: the primary dies.
        let positions = (0..<50).map { h.keys.position($0) }
        try await waitUntil("5,000 results written", timeout: .seconds(120), every: .milliseconds(20)) {
            var pipeline = RedisPipeline()
            for key in positions { pipeline.append(.raw(["HGET", key, "offset"])) }
            guard let replies = try? await h.redis.execute(pipeline) else { return false } // try?: an error is "not yet" while the failover runs
            return replies.compactMap { $0.string.flatMap { Int($0) } }.reduce(0, +) >= 5_000
        }
        // The replica stops reading (SIGSTOP) while the primary goes on, then the primary dies:
        // the worst moment for a failover. Without acknowledgements the primary runs ahead by
        // more than the sockets between them hold; with one required, batches wait instead.
        let old = cluster.primary.port
        let before = try await SentinelCluster.sum(of: "offset", in: positions, on: old)
        let replica = try #require(cluster.replicas[0].pid)
        kill(replica, SIGSTOP)
        var unreplicated = 0
        if acks > 0 {
            // A batch written on the primary that its replica never acknowledged: the fault.
            try await waitUntil("a batch is refused for want of its replica's acknowledgement", timeout: .seconds(30), every: .milliseconds(10)) {
                h.service?.health.replicas != nil
            }
            unreplicated = max(1, try await SentinelCluster.sum(of: "offset", in: positions, on: old) - before)
        } else {
            try await waitUntil("results written with the replica stopped", timeout: .seconds(30), every: .milliseconds(2)) {
                unreplicated = try await SentinelCluster.sum(of: "offset", in: positions, on: old) - before
                return unreplicated >= 6_000
            }
        }
        cluster.primary.kill()
        kill(replica, SIGCONT)
        _ = try await cluster.waitForFailover(from: old)
        // The old primary comes back (a container restarts) and the sentinels make it a replica
        // of the new one: with one replica required, batches wait for that.
        try await cluster.primary.start()
        try await h.waitUntilCommitted(timeout: .seconds(240))
        try await h.stop()
        try await waitUntil("the harness's client reaches the new primary", timeout: .seconds(30)) { (try? await h.redis.send(.ping())) != nil } // try?: an error is "not yet" while Redis comes back

        // What the new primary holds.
        var survey = Survey()
        survey.writtenUnreplicated = unreplicated
        survey.failovers = await cluster.failovers()
        for camera in 0..<50 {
            let mine = frames.filter { $0.cameraId == camera }
            let alerts = try await h.alerts(camera)
            let expected = Set(mine.filter(\.isAlert).map(\.requestId))
            survey.missingAlerts += expected.subtracting(alerts).count
            survey.duplicateAlerts += alerts.count - Set(alerts).count
            let latest = try await h.latest(camera).map(AggregatorHarness.requestId)
            if latest != mine.last?.requestId { survey.staleLatest += 1 }
            let history = try await h.redis.send(.raw(["XRANGE", h.keys.history(camera), "-", "+"]))
            guard case .array(let entries) = history else { survey.historyGaps += 1; continue }
            var offsets: [Int] = []
            var ids = Set<String>()
            for case .array(let entry) in entries {
                guard let id = entry.first?.string, let offset = Int(id.split(separator: "-")[0]) else { continue }
                offsets.append(offset)
                if case .array(let fields)? = entry.last, let body = fields.last?.bytes { ids.insert(AggregatorHarness.requestId(body)) }
            }
            if offsets != Array((offsets.first ?? 1)..<((offsets.first ?? 1) + offsets.count)) { survey.historyGaps += 1 }
            let missing = Set(mine.map(\.requestId)).subtracting(ids)
            survey.missingResults += missing.count
            for id in missing.sorted().prefix(3) where survey.missingSample.count < 12 {
                survey.missingSample.append("\(camera):\(id)@\(frames.firstIndex { $0.requestId == id } ?? -1) of \(offsets.count) entries")
            }
        }
        await h.redis.close()
        return survey
    }

    @Test func withOneReplicaAcknowledgementNothingIsLostAcrossAFailover() async throws {
        let survey = try await runThroughFailover(acks: 1)
        #expect(survey.writtenUnreplicated > 0, "the primary wrote results its replica never acknowledged, then died")
        #expect(survey.failovers == 1, "one failover: \(survey)")
        #expect(survey.missingResults == 0, "every result is in its camera's history on the new primary: \(survey)")
        #expect(survey.missingAlerts == 0 && survey.duplicateAlerts == 0, "every alert exactly once: \(survey)")
        #expect(survey.staleLatest == 0, "every camera's latest is its newest result: \(survey)")
        #expect(survey.historyGaps == 0, "history is gap-free: \(survey)")
    }

    @Test func withoutReplicaAcknowledgementsTheSameFaultIsReported() async throws {
        // Not asserted: whether anything is lost depends on what the replica had when the
        // primary died. Printed for the record (docs/operations.md explains the setting).
        let survey = try await runThroughFailover(acks: 0)
        print("min-replica-acks 0 across a failover: \(survey)")
        #expect(survey.historyGaps == 0 || survey.missingResults > 0, "a gap only ever comes from lost results: \(survey)")
    }
}

/// A master name the sentinels do not know stops the aggregator at start (issue 14).
@Suite struct AggregatorSentinelStartupTests {
    @Test func anUnknownMasterEndsTheRunWithTheReason() async throws {
        let cluster = try await SentinelCluster(replicas: 0, appendOnly: false)
        let h = try await AggregatorHarness { $0.redisURL = "redis-sentinel://127.0.0.1:\(cluster.sentinelPorts[0])/nosuchmaster" }
        try h.start()
        do {
            try await h.stop()
            Issue.record("the aggregator ran with a master no sentinel knows")
        } catch let error as RedisError {
            #expect(error.kind == .invalidConfiguration && error.message.contains("no sentinel knows a master named 'nosuchmaster'"), "\(error)")
        }
    }
}

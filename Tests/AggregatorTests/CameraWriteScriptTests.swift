import Foundation
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator

/// The compare-and-apply script of a camera's cluster write, on a real server: applied only on
/// the state its writes were planned from, and a refused command reported as `EXEC` would.
@Suite struct CameraWriteScriptTests {
    @Test func theScriptAppliesOnlyOnTheStateItWasPlannedFrom() async throws {
        let server = try await RedisServer()
        defer { server.stop() }
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = KeySchema(namespace: uniqueName("script") + ":", hashTagged: true)
        let planner = WritePlanner(keys: keys, alertRule: AlertRule(minimumLevel: .high))
        let message = try AssessmentMessage(validating: Array(#"{"requestId":"s1","cameraId":7,"timestamp":"2025-01-01T00:00:01Z","riskAssessment":{"maxRiskLevel":"critical","hasDangerousDriving":true}}"#.utf8))
        let plan = try #require(planner.plan([message], detections: [nil], origins: [MessageOrigin(topic: "t", partition: 0, offset: 5)]).perCamera().first)
        let transaction = WriteTransaction()
        let sha = try await redis.scriptHash(CameraWriteScript.script)
        func planned() async throws -> (read: [RedisReply], commands: [RedisArguments]) {
            let read = try await redis.execute(StoredBatchState.reads(plan, legacyChecks: []))
            return (read, try transaction.commands(for: plan, readReplies: read).commands)
        }

        // Another writer changes the camera between the reads and the script: nothing applied.
        let stale = try await planned()
        _ = try await redis.send(.hset(keys.position(7), [("offset", "41"), ("epoch", "1"), ("kafka_topic", "t"), ("kafka_partition", "0"), ("kafka_offset", "3")]))
        let refused = try await redis.send(CameraWriteScript.call(sha: sha, camera: plan.latest[0], read: stale.read, commands: stale.commands))
        #expect(try CameraWriteScript.answer(refused) == .changed)
        let historyAfterRefusal = try await redis.send(.xrange(keys.history(7)))
        let latestAfterRefusal = try await redis.send(.get(keys.latest(7)))
        #expect(historyAfterRefusal.isEmpty && latestAfterRefusal == nil)

        // Read and planned again: applied, one reply per command; the commands the server refuses
        // (the alert list holds a string) are error replies among them, the rest applied.
        _ = try await redis.send(.set(keys.alerts(7), "not a list"))
        let fresh = try await planned()
        let answer = try CameraWriteScript.answer(try await redis.send(CameraWriteScript.call(sha: sha, camera: plan.latest[0], read: fresh.read, commands: fresh.commands)))
        guard case .applied(let replies) = answer else {
            Issue.record("not applied: \(answer)")
            return
        }
        #expect(replies.count == fresh.commands.count, "\(replies)")
        let errors = WriteTransaction.errors(in: replies, commands: fresh.commands)
        #expect(errors.map { $0.command?.split(separator: " ").first ?? "" } == ["LPUSH", "LTRIM"] && errors.allSatisfy { $0.message.hasPrefix("WRONGTYPE") },
                "the alert list's two commands refused, named: \(errors) \(replies)")
        #expect(try await redis.send(.hget(keys.position(7), field: "offset")).map { String(decoding: $0, as: UTF8.self) } == "42")
        #expect(try await redis.send(.hget(keys.position(7), field: "kafka_offset")).map { String(decoding: $0, as: UTF8.self) } == "5")
        let history = try await redis.send(.xrange(keys.history(7)))
        let latest = try await redis.send(.get(keys.latest(7)))
        #expect(history.count == 1 && latest != nil)
        // The same call again finds the state it made: refused, nothing twice.
        let again = try await redis.send(CameraWriteScript.call(sha: sha, camera: plan.latest[0], read: fresh.read, commands: fresh.commands))
        #expect(try CameraWriteScript.answer(again) == .changed)
        #expect(try await redis.send(.xrange(keys.history(7))).count == 1)
        await redis.close()
    }
}

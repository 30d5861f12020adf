import Foundation
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation

/// The write transaction against a real redis-server, with writers racing on the same cameras.
@Suite struct WriteTransactionTests {
    @Test func concurrentWritersKeepEveryCameraSequenceGapFreeAndAlertOnce() async throws {
        let server = try await RedisServer()
        let keys = KeySchema(namespace: uniqueName("tx") + ":")
        let planner = WritePlanner(keys: keys, alertRule: AlertRule(minimumLevel: .high))
        let writer: WriteTransaction = {
            var writer = WriteTransaction()
            writer.maximumAttempts = 10_000 // four writers on the same cameras conflict a lot; none may give up
            return writer
        }()
        let cameras = 3
        let writers = 4
        let batchesPerWriter = 25

        // Each writer sends its own results for the same cameras; every writer also re-sends one
        // alert of writer 0's (a duplicate delivery racing the original).
        func batch(writer w: Int, number n: Int) throws -> WritePlan {
            var valid: [AssessmentMessage] = []
            for camera in 0..<cameras {
                let level = camera == 0 ? "high" : "low"
                let json = #"{"requestId":"w\#(w)-\#(n)-\#(camera)","cameraId":\#(camera),"timestamp":"\#(ResultSimulator.rfc3339(1_760_000_000_000 + Int64(n) * 1000 + Int64(w)))","riskAssessment":{"maxRiskLevel":"\#(level)","hasDangerousDriving":false}}"#
                valid.append(try AssessmentMessage(validating: Array(json.utf8)))
            }
            let duplicate = #"{"requestId":"w0-\#(n)-0","cameraId":0,"timestamp":"\#(ResultSimulator.rfc3339(1_760_000_000_000 + Int64(n) * 1000))","riskAssessment":{"maxRiskLevel":"high","hasDangerousDriving":false}}"#
            valid.append(try AssessmentMessage(validating: Array(duplicate.utf8)))
            return planner.plan(valid, detections: valid.map { _ in nil })
        }

        let pushed = try await withThrowingTaskGroup(of: Int.self) { group in
            for w in 0..<writers {
                let client = try await RedisClient.connect(configuration: server.configuration)
                let plans = try (0..<batchesPerWriter).map { try batch(writer: w, number: $0) }
                group.addTask {
                    var pushed = 0
                    for plan in plans { pushed += try await writer.apply(plan, on: client).alertsPushed }
                    return pushed
                }
            }
            return try await group.reduce(0, +)
        }

        let redis = try await RedisClient.connect(configuration: server.configuration)
        for camera in 0..<cameras {
            // Camera 0 also carries the re-sent duplicates (published again: at least once).
            let expected = writers * batchesPerWriter * (camera == 0 ? 2 : 1)
            let entries = try await redis.send(.xrange(keys.history(camera)))
            let offsets = entries.compactMap { ResultPosition.parse(prefixOf: $0.fields.first?.value ?? [])?.offset }
            #expect(offsets == Array(1...Int64(expected)), "camera \(camera): every offset once, in order, whatever the interleaving")
            #expect(Set(entries.compactMap { ResultPosition.parse(prefixOf: $0.fields.first?.value ?? [])?.epoch }).count == 1, "one epoch")
            #expect(try await redis.send(.hget(keys.position(camera), field: "offset")) == Array(String(expected).utf8))
        }
        #expect(pushed == writers * batchesPerWriter, "each requestId alerted exactly once although every writer re-sent writer 0's alerts")
        let alerts = try await redis.send(.lrange(keys.alerts(0), start: 0, stop: -1))
        let alertIds = alerts.compactMap { (try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any])?["requestId"] as? String } // try?: a payload that is no JSON object fails the expectation on it
        #expect(alertIds.count == 100 && Set(alertIds).count == 100, "the list holds the newest 100, no duplicate")
    }
}

extension WriteTransactionTests {
    @Test func aCommandFailingInsideTheTransactionIsReportedAndTheRestApplied() async throws {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = KeySchema(namespace: uniqueName("bad") + ":")
        let planner = WritePlanner(keys: keys, alertRule: AlertRule())
        // An operator left a string where the camera's history stream belongs, under a live counter.
        _ = try await redis.send(.hset(keys.position(9), [("offset", Array("4".utf8)), ("epoch", Array("e".utf8))]))
        _ = try await redis.send(.set(keys.history(9), "not a stream"))
        let json = #"{"requestId":"r1","cameraId":9,"timestamp":"2025-01-01T00:00:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}}"#
        let plan = planner.plan([try AssessmentMessage(validating: Array(json.utf8))], detections: [nil])
        let outcome = try await WriteTransaction().apply(plan, on: redis)
        #expect(outcome.commandErrors.count == 1)
        #expect(outcome.commandErrors.first?.serverCode == .wrongType && outcome.commandErrors.first?.command == "XADD \(keys.history(9))", "\(outcome.commandErrors)")
        let latest = try #require(try await redis.send(.get(keys.latest(9))))
        #expect(ResultPosition.parse(prefixOf: latest) == ResultPosition(offset: 5, epoch: "e"), "everything else was applied, once")
    }
}

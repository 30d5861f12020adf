import Foundation
import KafkaClient
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation

@Suite struct AggregatorBadInputTests {
    @Test func everyClassOfBadInputIsDeadLetteredWithItsReason() async throws {
        let h = try await AggregatorHarness { $0.maximumMessageBytes = 4096 }
        try h.start()
        let bad: [(String, [UInt8])] = [
            ("malformed_json", Array(#"{"requestId":"x","#.utf8)),
            ("invalid_utf8", Array(#"{"requestId":"x"#.utf8) + [0xFF] + Array(#"","cameraId":1}"#.utf8)),
            ("missing_field", Array(#"{"requestId":"x","cameraId":1}"#.utf8)),
            ("wrong_type", Array(assessment("x", camera: 1, time: "2025-10-20T10:30:00Z").replacingOccurrences(of: "\"hasDangerousDriving\":false", with: "\"hasDangerousDriving\":\"no\"").utf8)),
            ("oversized", Array(assessment("big", camera: 1, time: "2025-10-20T10:30:00Z", extra: #","pad":""# + String(repeating: "x", count: 5000) + "\"").utf8)),
            ("unknown_risk_level", Array(assessment("x", camera: 1, time: "2025-10-20T10:30:00Z", level: "apocalyptic").utf8)),
            ("invalid_value", Array(assessment("bad id!", camera: 1, time: "2025-10-20T10:30:00Z").utf8)),
        ]
        try h.produce(assessment("good-1", camera: 1, time: "2025-10-20T10:30:00Z", level: "high"), camera: 1)
        for (_, bytes) in bad { try h.produce(bytes, camera: 1) }
        try h.produce(assessment("good-2", camera: 1, time: "2025-10-20T10:30:01Z", level: "high"), camera: 1)
        try await h.flush()
        try await h.waitUntilCommitted()

        #expect(try await h.alerts(1) == ["good-2", "good-1"], "valid messages around bad ones are all processed")
        let letters = try await h.deadLetters(expected: bad.count)
        #expect(letters.count == bad.count)
        for (reason, bytes) in bad {
            let letter = letters.first { $0.value == bytes }
            #expect(letter != nil, "\(reason) not in the dead-letter topic")
            #expect(letter.flatMap { $0.header("dlq.reason") } == Array(reason.utf8), "\(reason)")
            #expect(letter.flatMap { $0.header("dlq.source.topic") } == Array(h.topic.utf8))
            #expect(letter.flatMap { $0.header("dlq.source.offset") } != nil)
            #expect(letter?.key == Array("1".utf8))
        }
        let detail = String(decoding: letters.first { $0.header("dlq.reason") == Array("missing_field".utf8) }?.header("dlq.detail") ?? [], as: UTF8.self)
        #expect(detail.contains("'timestamp'"))
        let text = String(decoding: h.service!.metrics.render(), as: UTF8.self)
        #expect(text.contains(#"aggregator_dead_letters_total{reason="oversized"} 1"#))
        try await h.stop()
    }

    @Test func fuzzedInputNeverStopsTheStream() async throws {
        let h = try await AggregatorHarness(partitions: 8) { $0.alertListLength = 10_000 }
        try h.start()
        var simulator = ResultSimulator(cameras: 20, alertRatio: 0.25, seed: 99, runTag: "fuzz")
        var rng = SplitMix(seed: 12345)
        var validFrames: [ResultSimulator.Frame] = []
        var detections = RedisPipeline()
        var badCount = 0
        for i in 0..<12_000 {
            let frame = simulator.next(at: 1_760_000_000_000 + Int64(i))
            if rng.next() % 6 == 0 {
                validFrames.append(frame)
                detections.append(.set(h.keys.detection(frame.requestId), frame.detection))
                try h.produce(frame.assessment, camera: frame.cameraId)
            } else {
                try h.produce(Fuzzing.mutate(frame.assessment, &rng), camera: frame.cameraId)
                badCount += 1
            }
            if i % 2000 == 0 { try await h.flush() }
        }
        _ = try await h.redis.execute(detections)
        try await h.flush()
        try await h.waitUntilCommitted(timeout: .seconds(120))
        // Every valid message's effect is present; mutations that happen to stay valid are allowed.
        for camera in 0..<20 {
            let alerts = Set(try await h.alerts(camera))
            for frame in validFrames where frame.cameraId == camera && frame.isAlert {
                #expect(alerts.contains(frame.requestId), "alert \(frame.requestId) missing")
            }
        }
        #expect(validFrames.count > 1000 && badCount > 8000)
        let text = String(decoding: h.service!.metrics.render(), as: UTF8.self)
        #expect(text.contains("aggregator_messages_consumed_total 12000"))
        try await h.stop()
    }
}

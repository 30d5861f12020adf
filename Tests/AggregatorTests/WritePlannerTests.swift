import KafkaClient
import Testing
import TrafficModel
@testable import Aggregator

/// The pure core, without servers.
@Suite struct WritePlannerTests {
    let planner = WritePlanner(keys: KeySchema(namespace: "t:"), alertRule: AlertRule(minimumLevel: .high))

    func message(_ id: String, camera: Int, time: String, level: String = "low", dangerous: Bool = false) -> KafkaMessage {
        let json = #"{"requestId":"\#(id)","cameraId":\#(camera),"timestamp":"\#(time)","riskAssessment":{"maxRiskLevel":"\#(level)","hasDangerousDriving":\#(dangerous)}}"#
        return KafkaMessage(topic: "in", partition: 0, offset: 0, key: nil, value: Array(json.utf8))
    }

    @Test func plansPublishesInOrderLatestPerCameraAndAlerts() {
        let batch = [
            message("a", camera: 1, time: "2025-01-01T00:00:02Z"),
            message("b", camera: 2, time: "2025-01-01T00:00:01Z", level: "critical"),
            message("c", camera: 1, time: "2025-01-01T00:00:01Z", dangerous: true), // older than a
            message("d", camera: 1, time: "2025-01-01T00:00:03Z"),
        ]
        let (valid, dead) = planner.decode(batch)
        #expect(dead.isEmpty)
        let plan = planner.plan(valid, detections: [nil, Array(#"{"detectedObjects":[1]}"#.utf8), nil, nil])
        #expect(plan.publishes.map(\.channel) == ["t:camera:1", "t:camera:2", "t:camera:1", "t:camera:1"])
        #expect(plan.latest.map(\.camera) == [1, 2])
        #expect(plan.latest[0].timestampMilliseconds == RFC3339.milliseconds("2025-01-01T00:00:03Z"))
        #expect(String(decoding: plan.latest[0].payload, as: UTF8.self).contains(#""requestId":"d""#))
        #expect(plan.latest[0].timestampKey == "t:camera:1:latest_ts")
        #expect(plan.alerts.map(\.requestId) == ["b", "c"])
        #expect(plan.alerts.map(\.listKey) == ["t:alerts:2", "t:alerts:1"])
        #expect(plan.alerts[0].markerKey == "t:alerted:b")
        #expect(plan.detectionMissing == 3)
    }

    @Test func separatesDeadLetters() {
        let batch = [message("ok", camera: 1, time: "2025-01-01T00:00:00Z"), KafkaMessage(topic: "in", partition: 3, offset: 9, key: nil, value: Array("{".utf8))]
        let (valid, dead) = planner.decode(batch)
        #expect(valid.map(\.requestId) == ["ok"])
        #expect(dead.map(\.rejection.reason) == [.malformedJSON])
        #expect(dead[0].source.position == "in[3]@9")
    }

    @Test func scriptArgumentsFollowTheDocumentedLayout() {
        let (valid, _) = planner.decode([message("x", camera: 4, time: "2025-01-01T00:00:00Z", level: "high")])
        let plan = planner.plan(valid, detections: [nil])
        let args = WriteScript.arguments(for: plan, latestTTL: 300, alertListLength: 100, alertMarkerTTL: 60, historyLength: 500).map { String(decoding: $0, as: UTF8.self) }
        #expect(Array(args[0..<7]) == ["300", "99", "60", "500", "1", "1", "1"])
        #expect(Array(args[7..<14]) == ["t:camera:4", "t:camera:4:history", "t:camera:4:position", "t:camera:4:latest", "t:camera:4:latest_ts", String(RFC3339.milliseconds("2025-01-01T00:00:00Z")!), "1"])
        #expect(args[14] == "1" && args[15].hasPrefix(#""requestId":"x""#), "publish: camera slot, then the payload without its opening brace")
        #expect(Array(args[16..<19]) == ["t:alerted:x", "t:alerts:4", "1"], "the alert names its publish instead of repeating the payload")
        #expect(args.count == 7 + 7 + 2 + 3)
    }
}

import RedisClient
import Testing
import TrafficModel
@testable import Aggregator
import Simulation

/// In cluster mode every write unit the aggregator builds — one camera's keys and channel — hashes
/// to one slot, so its transaction can run on that slot's primary.
@Suite struct ClusterWriteUnitTests {
    @Test func everyCamerasKeysShareOneSlot() throws {
        let keys = KeySchema(namespace: "prod:", hashTagged: true)
        let planner = WritePlanner(keys: keys, alertRule: AlertRule(minimumLevel: .medium))
        var simulator = ResultSimulator(cameras: 40, alertRatio: 0.5, seed: 7, runTag: "slots")
        let frames = (0..<400).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        let valid = try frames.map { try AssessmentMessage(validating: $0.assessment) }
        // Every tenth detection carries a frame image, so frame keys are planned too.
        let detections: [[UInt8]?] = frames.enumerated().map { index, frame in
            index % 10 == 0 ? Array(#"{"cameraId":\#(frame.cameraId),"detectedObjects":[],"frameImage":"aGVsbG8="}"#.utf8) : frame.detection
        }
        let plan = planner.plan(valid, detections: detections)
        #expect(plan.latest.count == 40 && !plan.alerts.isEmpty && !plan.frames.isEmpty)
        var unit: [Int: Set<String>] = [:] // camera → every name its write touches
        for camera in plan.latest {
            unit[camera.camera, default: []].formUnion([camera.channel, camera.historyKey, camera.positionKey, camera.key, camera.timestampKey])
        }
        for alert in plan.alerts { unit[alert.camera, default: []].formUnion([alert.listKey, alert.alertedKey]) }
        for frame in plan.frames {
            let camera = plan.latest[plan.publishes[frame.publishIndex].cameraSlot].camera
            unit[camera, default: []].insert(frame.key)
        }
        for (camera, names) in unit {
            let slots = Set(names.map(HashSlot.of))
            #expect(slots.count == 1, "camera \(camera): \(names.sorted()) span slots \(slots.sorted())")
            #expect(slots.first == HashSlot.of("{\(camera)}"))
        }
        #expect(Set(unit.keys.map { HashSlot.of("{\($0)}") }).count > 30, "cameras spread over many slots")
    }
}

/// `WritePlan.perCamera`: each camera's part of a batch, its indices renumbered.
@Suite struct PerCameraPlanTests {
    @Test func eachCamerasPlanKeepsItsOrderLatestAlertsAndFrames() throws {
        let planner = WritePlanner(keys: KeySchema(namespace: "t:", hashTagged: true), alertRule: AlertRule(minimumLevel: .high))
        func message(_ id: String, camera: Int, second: Int, level: String) throws -> AssessmentMessage {
            try AssessmentMessage(validating: Array(#"{"requestId":"\#(id)","cameraId":\#(camera),"timestamp":"2025-01-01T00:00:0\#(second)Z","riskAssessment":{"maxRiskLevel":"\#(level)","hasDangerousDriving":false}}"#.utf8))
        }
        let valid = [try message("a1", camera: 1, second: 1, level: "low"), try message("b1", camera: 2, second: 1, level: "high"),
                     try message("a2", camera: 1, second: 3, level: "high"), try message("b2", camera: 2, second: 2, level: "low"),
                     try message("a3", camera: 1, second: 2, level: "low")]
        let framed = Array(#"{"cameraId":2,"detectedObjects":[],"frameImage":"aGVsbG8="}"#.utf8)
        let plan = planner.plan(valid, detections: [nil, framed, nil, nil, nil])
        let parts = plan.perCamera()
        #expect(parts.map { $0.latest.map(\.camera) } == [[1], [2]])
        let ids = parts.map { part in part.publishes.map { String(decoding: $0.payload, as: UTF8.self) }.map { text in ["a1", "a2", "a3", "b1", "b2"].first { text.contains(#""requestId":"\#($0)""#) } ?? "?" } }
        #expect(ids == [["a1", "a2", "a3"], ["b1", "b2"]], "each camera's results in input order")
        #expect(parts.allSatisfy { $0.publishes.allSatisfy { $0.cameraSlot == 0 } })
        #expect(parts[0].latest[0].publishIndex == 1, "camera 1's newest is a2, its second result")
        #expect(parts[1].latest[0].publishIndex == 1, "camera 2's newest is b2")
        #expect(parts[0].alerts.map(\.publishIndex) == [1] && parts[1].alerts.map(\.publishIndex) == [0])
        #expect(parts[0].frames.isEmpty && parts[1].frames.map(\.publishIndex) == [0], "b1's frame follows it")
    }
}

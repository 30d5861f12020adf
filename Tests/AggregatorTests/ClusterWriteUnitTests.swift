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

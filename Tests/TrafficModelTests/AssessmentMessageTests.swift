import Foundation
import Testing
@testable import TrafficModel

@Suite struct AssessmentMessageTests {
    static let valid = #"{"requestId":"msg_1729416600123_001","cameraId":1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"high","hasDangerousDriving":true,"notes":["x"]},"llmLatency":2.5,"llmModel":"qwen-vl-plus","extra":{"k":1}}"#

    func rejection(_ text: String, limit: Int = AssessmentMessage.defaultMaximumBytes) -> InputRejection? {
        rejection(Array(text.utf8), limit: limit)
    }

    func rejection(_ bytes: [UInt8], limit: Int = AssessmentMessage.defaultMaximumBytes) -> InputRejection? {
        do {
            _ = try AssessmentMessage(validating: bytes, maximumBytes: limit)
            return nil
        } catch {
            return error
        }
    }

    @Test func parsesAValidMessage() throws {
        let m = try AssessmentMessage(validating: Array(Self.valid.utf8))
        #expect(m.requestId == "msg_1729416600123_001")
        #expect(m.cameraId == 1)
        #expect(m.timestampMilliseconds == 1_760_956_200_000)
        #expect(m.riskLevel == .high)
        #expect(m.hasDangerousDriving)
    }

    @Test func acceptsNumericStringCameraIdsInCanonicalForm() throws {
        let m = try AssessmentMessage(validating: Array(Self.valid.replacingOccurrences(of: #""cameraId":1"#, with: #""cameraId":"007""#).utf8))
        #expect(m.cameraId == 7)
        let merged = ResultMerger.merge(m, detection: nil)
        #expect(String(decoding: merged.json, as: UTF8.self).contains(#""cameraId":7,"#))
    }

    @Test(arguments: [
        (#"{"cameraId":1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}}"#, InputRejection.Reason.missingField, "'requestId'"),
        (#"{"requestId":"a b","cameraId":1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}}"#, .invalidValue, "'requestId'"),
        (#"{"requestId":5,"cameraId":1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}}"#, .wrongType, "'requestId'"),
        (#"{"requestId":"r","cameraId":-1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}}"#, .invalidValue, "'cameraId'"),
        (#"{"requestId":"r","cameraId":1.5,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}}"#, .invalidValue, "'cameraId'"),
        (#"{"requestId":"r","cameraId":true,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}}"#, .wrongType, "'cameraId'"),
        (#"{"requestId":"r","cameraId":1,"timestamp":"yesterday","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}}"#, .invalidValue, "'timestamp'"),
        (#"{"requestId":"r","cameraId":1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":"high"}"#, .wrongType, "'riskAssessment'"),
        (#"{"requestId":"r","cameraId":1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"hasDangerousDriving":false}}"#, .missingField, "maxRiskLevel"),
        (#"{"requestId":"r","cameraId":1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"extreme","hasDangerousDriving":false}}"#, .unknownRiskLevel, "extreme"),
        (#"{"requestId":"r","cameraId":1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":"no"}}"#, .wrongType, "hasDangerousDriving"),
        (#"{"requestId":"r","cameraId":1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false},"llmLatency":"2s"}"#, .wrongType, "'llmLatency'"),
        (#"{"requestId":"r","cameraId":1,"timestamp":"2025-10-20T10:30:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}"#, .malformedJSON, "unterminated object at byte 132"),
    ])
    func rejectsBadInputNamingTheField(text: String, reason: InputRejection.Reason, fragment: String) {
        let r = rejection(text)
        #expect(r?.reason == reason, "\(String(describing: r))")
        #expect(r?.detail.contains(fragment) == true, "\(String(describing: r))")
    }

    @Test func rejectsOversizedAndInvalidUTF8() {
        #expect(rejection(Self.valid, limit: 100)?.reason == .oversized)
        var bytes = Array(Self.valid.utf8)
        let at = bytes.firstIndex(of: UInt8(ascii: "q"))!
        bytes[at] = 0xFF
        #expect(rejection(bytes)?.reason == .invalidUTF8)
    }

    @Test func parsesRFC3339Variants() {
        #expect(RFC3339.milliseconds("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339.milliseconds("2025-10-20T10:30:00.5Z") == 1_760_956_200_500)
        #expect(RFC3339.milliseconds("2025-10-20T12:30:00.123+02:00") == 1_760_956_200_123)
        #expect(RFC3339.milliseconds("2024-02-29T00:00:00Z") != nil)
        #expect(RFC3339.milliseconds("2025-02-29T00:00:00Z") == nil)
        #expect(RFC3339.milliseconds("2025-10-20 10:30:00") == nil)
        #expect(RFC3339.milliseconds("2025-13-20T10:30:00Z") == nil)
    }

    @Test func alertRuleUsesLevelOrDangerousDriving() {
        let rule = AlertRule(minimumLevel: .high)
        #expect(rule.isAlert(level: .high, dangerousDriving: false))
        #expect(rule.isAlert(level: .critical, dangerousDriving: false))
        #expect(!rule.isAlert(level: .medium, dangerousDriving: false))
        #expect(rule.isAlert(level: .none, dangerousDriving: true))
        #expect(AlertRule(minimumLevel: .medium).isAlert(level: .medium, dangerousDriving: false))
    }

    @Test func keySchemaAppliesTheNamespace() {
        let keys = KeySchema(namespace: "prod:")
        #expect(keys.cameraChannel(7) == "prod:camera:7")
        #expect(keys.latest(7) == "prod:camera:7:latest")
        #expect(keys.alerts(7) == "prod:alerts:7")
        #expect(keys.detection("r1") == "prod:detection:r1")
        #expect(keys.camera(fromChannel: "prod:camera:12") == 12)
        #expect(keys.camera(fromChannel: "camera:12") == nil)
        #expect(KeySchema().cameraChannel(7) == "camera:7")
    }
}

@Suite struct ResultMergerTests {
    @Test func splicesDetectionMembersIntoTheAssessment() throws {
        let m = try AssessmentMessage(validating: Array(AssessmentMessageTests.valid.utf8))
        let detection = #"{"cameraId":1,"timestamp":"2025-10-20T10:29:59Z","detectedObjects":[{"class":"car","confidence":0.93,"bbox":[12,40,210,180]}],"trafficGroups":[{"groupId":1,"objectIds":[0],"relation":"following"}],"frameImage":"aGk="}"#
        let merged = ResultMerger.merge(m, detection: Array(detection.utf8))
        #expect(!merged.detectionMissing)
        let object = try JSONSerialization.jsonObject(with: Data(merged.json)) as! [String: Any]
        #expect(object["requestId"] as? String == "msg_1729416600123_001")
        #expect(object["timestamp"] as? String == "2025-10-20T10:30:00Z", "the assessment's own fields win")
        #expect((object["detectedObjects"] as? [Any])?.count == 1)
        #expect((object["trafficGroups"] as? [Any])?.count == 1)
        #expect(object["frameImage"] == nil, "the frame image leaves the result")
        #expect((object["frameImageRef"] as? [String: Any])?["bytes"] as? Int == 2)
        #expect(merged.frame == Array("hi".utf8), "decoded, to be stored under its own key")
        #expect((object["extra"] as? [String: Any])?["k"] as? Int == 1, "unknown fields pass through")
        #expect(object["detectionMissing"] == nil)
        #expect(((object["riskAssessment"] as? [String: Any])?["notes"] as? [String]) == ["x"])
    }

    @Test func missingOrUnusableDetectionIsMarked() throws {
        let m = try AssessmentMessage(validating: Array(AssessmentMessageTests.valid.utf8))
        for detection in [nil, Array("not json".utf8)] as [[UInt8]?] {
            let merged = ResultMerger.merge(m, detection: detection)
            #expect(merged.detectionMissing)
            let object = try JSONSerialization.jsonObject(with: Data(merged.json)) as! [String: Any]
            #expect((object["detectedObjects"] as? [Any])?.isEmpty == true)
            #expect((object["trafficGroups"] as? [Any])?.isEmpty == true)
            #expect(object["detectionMissing"] as? Bool == true)
        }
    }

    @Test func detectionWithoutArraysStillGetsThem() throws {
        let m = try AssessmentMessage(validating: Array(AssessmentMessageTests.valid.utf8))
        let merged = ResultMerger.merge(m, detection: Array(#"{"cameraId":1}"#.utf8))
        let object = try JSONSerialization.jsonObject(with: Data(merged.json)) as! [String: Any]
        #expect((object["detectedObjects"] as? [Any])?.isEmpty == true)
        #expect(object["detectionMissing"] == nil)
    }
}

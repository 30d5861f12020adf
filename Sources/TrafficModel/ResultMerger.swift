/// Builds the published result (SPEC §4) by splicing JSON text: the assessment's members as
/// written (with `cameraId` in canonical form), then every detection member the assessment does
/// not have. Nested values are copied byte for byte, never decoded.
public enum ResultMerger {
    /// Merges; a detection that is nil (missing, expired) or not a JSON object adds empty arrays
    /// and `"detectionMissing":true`, and `detectionMissing` is true in the result.
    public static func merge(_ assessment: AssessmentMessage, detection: [UInt8]?) -> (json: [UInt8], detectionMissing: Bool) {
        var detectionMembers: [JSONMember]?
        if let detection {
            detectionMembers = try? detection.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in try JSONScanner.objectMembers(buffer) }
        }
        var out: [UInt8] = []
        out.reserveCapacity(assessment.bytes.count + (detection?.count ?? 64) + 16)
        out.append(UInt8(ascii: "{"))
        var first = true
        // Objects have a handful of members: a linear scan beats hashing every key.
        var present: [String] = []
        present.reserveCapacity(assessment.members.count + 4)
        for member in assessment.members {
            present.append(member.key)
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(contentsOf: assessment.bytes[member.keyRange])
            out.append(UInt8(ascii: ":"))
            if member.key == "cameraId" {
                out.append(contentsOf: String(assessment.cameraId).utf8)
            } else {
                out.append(contentsOf: assessment.bytes[member.valueRange])
            }
        }
        if let detection, let detectionMembers {
            for member in detectionMembers where !present.contains(member.key) {
                present.append(member.key)
                out.append(UInt8(ascii: ","))
                out.append(contentsOf: detection[member.keyRange])
                out.append(UInt8(ascii: ":"))
                out.append(contentsOf: detection[member.valueRange])
            }
            appendIfAbsent(Self.emptyObjects, &out, &present)
            appendIfAbsent(Self.emptyGroups, &out, &present)
        } else {
            appendIfAbsent(Self.emptyObjects, &out, &present)
            appendIfAbsent(Self.emptyGroups, &out, &present)
            appendIfAbsent(Self.missingMarker, &out, &present)
        }
        out.append(UInt8(ascii: "}"))
        return (out, detectionMembers == nil)
    }

    /// A member added when absent: its name and its pre-encoded `,"name":value` bytes.
    private struct DefaultMember: Sendable {
        let key: String
        let encoded: [UInt8]
        init(_ key: String, _ value: String) {
            self.key = key
            self.encoded = Array(",\"\(key)\":\(value)".utf8)
        }
    }

    private static let emptyObjects = DefaultMember("detectedObjects", "[]")
    private static let emptyGroups = DefaultMember("trafficGroups", "[]")
    private static let missingMarker = DefaultMember("detectionMissing", "true")

    private static func appendIfAbsent(_ member: DefaultMember, _ out: inout [UInt8], _ present: inout [String]) {
        guard !present.contains(member.key) else { return }
        present.append(member.key)
        out.append(contentsOf: member.encoded)
    }
}

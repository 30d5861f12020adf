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
        var present = Set<String>()
        present.reserveCapacity(assessment.members.count)
        for member in assessment.members {
            present.insert(member.key)
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
                present.insert(member.key)
                out.append(UInt8(ascii: ","))
                out.append(contentsOf: detection[member.keyRange])
                out.append(UInt8(ascii: ":"))
                out.append(contentsOf: detection[member.valueRange])
            }
            appendIfAbsent("detectedObjects", "[]", &out, &present)
            appendIfAbsent("trafficGroups", "[]", &out, &present)
        } else {
            appendIfAbsent("detectedObjects", "[]", &out, &present)
            appendIfAbsent("trafficGroups", "[]", &out, &present)
            appendIfAbsent("detectionMissing", "true", &out, &present)
        }
        out.append(UInt8(ascii: "}"))
        return (out, detectionMembers == nil)
    }

    private static func appendIfAbsent(_ key: String, _ value: String, _ out: inout [UInt8], _ present: inout Set<String>) {
        guard present.insert(key).inserted else { return }
        out.append(contentsOf: ",\"\(key)\":\(value)".utf8)
    }
}

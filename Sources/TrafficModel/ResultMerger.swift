import Foundation

/// Builds the published result (SPEC §4) by splicing JSON text: the assessment's members as
/// written (with `cameraId` in canonical form), then every detection member the assessment does
/// not have. Nested values are copied byte for byte, never decoded.
///
/// Two kinds of member never pass through as written:
/// - names the aggregator writes itself (`reservedFields`): a message carrying one is rejected
///   before it gets here (`AssessmentMessage`); a detection's is dropped and counted;
/// - `frameImage` (base64, optionally a `data:` URL): the decoded image leaves the result, to be
///   stored under its own key, and the result carries `"frameImageRef":{"url":…,"bytes":…}`.
public enum ResultMerger {
    /// Top-level names only the aggregator writes: the position it splices in, the marker of a
    /// missing detection, and the frame reference.
    public static let reservedFields: Set<String> = ["position", "detectionMissing", FrameImage.referenceField]

    /// What the merge produced.
    public struct Merged: Sendable {
        /// The result JSON (without the position, which the write transaction splices in).
        public var json: [UInt8]
        /// No usable detection: missing, expired, or not a JSON object.
        public var detectionMissing: Bool
        /// The detection was there but is not a JSON object (counted apart from missing ones).
        public var detectionCorrupt: Bool
        /// Detection members dropped because the aggregator writes those names itself.
        public var droppedFields: [String]
        /// The frame image taken out of the result (decoded), to be stored under its own key.
        public var frame: [UInt8]?
        /// Why a `frameImage` was dropped instead (not base64, over the size bound).
        public var frameProblem: String?
    }

    /// Merges; a detection that is nil (missing, expired) or not a JSON object adds empty arrays
    /// and `"detectionMissing":true`. Frame images over `maximumFrameBytes` (decoded) are dropped.
    public static func merge(_ assessment: AssessmentMessage, detection: [UInt8]?, maximumFrameBytes: Int = FrameImage.defaultMaximumBytes) -> Merged {
        var detectionMembers: [JSONMember]?
        if let detection {
            detectionMembers = try? detection.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in try JSONScanner.objectMembers(buffer) } // try?: a corrupt detection is flagged (detectionCorrupt), never fatal
        }
        var merged = Merged(json: [], detectionMissing: detectionMembers == nil, detectionCorrupt: detection != nil && detectionMembers == nil, droppedFields: [])
        var out: [UInt8] = []
        out.reserveCapacity(assessment.bytes.count + (detection?.count ?? 64) + 16)
        out.append(UInt8(ascii: "{"))
        var first = true
        // Objects have a handful of members: a linear scan beats hashing every key.
        var present: [String] = []
        present.reserveCapacity(assessment.members.count + 4)
        var frameSource: (bytes: [UInt8], member: JSONMember)?
        for member in assessment.members {
            present.append(member.key)
            if member.key == FrameImage.field {
                frameSource = (assessment.bytes, member)
                continue
            }
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
                if reservedFields.contains(member.key) {
                    merged.droppedFields.append(member.key)
                    continue
                }
                if member.key == FrameImage.field {
                    frameSource = (detection, member)
                    continue
                }
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
        if let (bytes, member) = frameSource {
            switch FrameImage.decode(bytes, member, maximumBytes: maximumFrameBytes) {
            case .success(let image):
                out.append(contentsOf: FrameImage.reference(camera: assessment.cameraId, requestId: assessment.requestId, bytes: image.count).utf8)
                merged.frame = image
            case .failure(let problem):
                merged.frameProblem = problem.reason
            }
        }
        out.append(UInt8(ascii: "}"))
        merged.json = out
        return merged
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

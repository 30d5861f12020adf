/// A validated risk-assessment message (SPEC §2), keeping its original bytes for splicing.
public struct AssessmentMessage: Sendable {
    public var requestId: String
    public var cameraId: Int
    /// `timestamp` in epoch milliseconds.
    public var timestampMilliseconds: Int64
    public var riskLevel: RiskLevel
    public var hasDangerousDriving: Bool
    /// The message exactly as received.
    public var bytes: [UInt8]
    /// Its top-level members.
    public var members: [JSONMember]

    /// Default upper bound of a message's size (1 MiB).
    public static let defaultMaximumBytes = 1 << 20

    /// Validates one message; the rejection names the field and, for syntax, the byte offset.
    public init(validating bytes: [UInt8], maximumBytes: Int = AssessmentMessage.defaultMaximumBytes) throws(InputRejection) {
        guard bytes.count <= maximumBytes else {
            throw InputRejection(.oversized, "message is \(bytes.count) bytes, limit \(maximumBytes)")
        }
        let members: [JSONMember]
        do {
            members = try bytes.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in try JSONScanner.objectMembers(buffer) }
        } catch {
            throw InputRejection(error.reason.hasPrefix("invalid UTF-8") ? .invalidUTF8 : .malformedJSON, error.description)
        }
        self.bytes = bytes
        self.members = members
        if let duplicate = Self.firstDuplicateKey(members) {
            throw InputRejection(.duplicateField, "field '\(duplicate.prefix(64))' appears more than once")
        }
        if let reserved = members.first(where: { ResultMerger.reservedFields.contains($0.key) }) {
            throw InputRejection(.reservedField, "field '\(reserved.key)' is written by the aggregator and cannot be supplied (byte \(reserved.keyRange.lowerBound))")
        }
        func member(_ name: String) throws(InputRejection) -> JSONMember {
            guard let m = members.last(where: { $0.key == name }) else { throw InputRejection(.missingField, "field '\(name)' is missing") }
            return m
        }
        func string(_ m: JSONMember) -> String {
            bytes.withUnsafeBufferPointer { JSONScanner.decodeString($0, m.valueRange) }
        }
        func raw(_ m: JSONMember) -> String {
            String(decoding: bytes[m.valueRange], as: UTF8.self)
        }

        let request = try member("requestId")
        guard request.kind == .string else { throw InputRejection(.wrongType, "field 'requestId' must be a string") }
        requestId = string(request)
        guard Self.isValidRequestId(requestId) else {
            throw InputRejection(.invalidValue, "field 'requestId' must be 1–128 characters of [A-Za-z0-9_:.-]")
        }

        let camera = try member("cameraId")
        switch camera.kind {
        case .number:
            guard let id = CameraID.parse(raw(camera)) else { throw InputRejection(.invalidValue, "field 'cameraId' must be \(CameraID.rangeDescription), got \(raw(camera).prefix(40))") }
            cameraId = id
        case .string:
            guard let id = CameraID.parse(string(camera)) else { throw InputRejection(.invalidValue, "field 'cameraId' must be \(CameraID.rangeDescription), got \"\(string(camera).prefix(40))\"") }
            cameraId = id
        default:
            throw InputRejection(.wrongType, "field 'cameraId' must be an integer or a numeric string")
        }

        let time = try member("timestamp")
        guard time.kind == .string else { throw InputRejection(.wrongType, "field 'timestamp' must be an RFC 3339 string") }
        guard let millis = RFC3339.milliseconds(string(time)) else {
            throw InputRejection(.invalidValue, "field 'timestamp' is not RFC 3339: \"\(string(time).prefix(40))\"")
        }
        timestampMilliseconds = millis

        let assessment = try member("riskAssessment")
        guard assessment.kind == .object else { throw InputRejection(.wrongType, "field 'riskAssessment' must be an object") }
        let inner = bytes.withUnsafeBufferPointer { JSONScanner.objectMembers($0, in: assessment.valueRange) }
        guard let level = inner.last(where: { $0.key == "maxRiskLevel" }) else {
            throw InputRejection(.missingField, "field 'riskAssessment.maxRiskLevel' is missing")
        }
        guard level.kind == .string else { throw InputRejection(.wrongType, "field 'riskAssessment.maxRiskLevel' must be a string") }
        let levelName = string(level)
        guard let parsed = RiskLevel(name: levelName) else {
            throw InputRejection(.unknownRiskLevel, "field 'riskAssessment.maxRiskLevel' is \"\(levelName.prefix(40))\", expected none|low|medium|high|critical")
        }
        riskLevel = parsed
        guard let dangerous = inner.last(where: { $0.key == "hasDangerousDriving" }) else {
            throw InputRejection(.missingField, "field 'riskAssessment.hasDangerousDriving' is missing")
        }
        guard dangerous.kind == .bool else { throw InputRejection(.wrongType, "field 'riskAssessment.hasDangerousDriving' must be true or false") }
        hasDangerousDriving = bytes[dangerous.valueRange.lowerBound] == UInt8(ascii: "t")

        if let latency = members.last(where: { $0.key == "llmLatency" }), latency.kind != .number, latency.kind != .null {
            throw InputRejection(.wrongType, "field 'llmLatency' must be a number")
        }
        if let model = members.last(where: { $0.key == "llmModel" }), model.kind != .string, model.kind != .null {
            throw InputRejection(.wrongType, "field 'llmModel' must be a string")
        }
    }

    /// The first top-level name that occurs twice, if any (a quadratic scan for the usual handful
    /// of members, a set beyond that, so a hostile message with many members costs linear time).
    static func firstDuplicateKey(_ members: [JSONMember]) -> String? {
        if members.count <= 16 {
            for i in members.indices.dropFirst() {
                for j in 0..<i where members[j].key == members[i].key { return members[i].key }
            }
            return nil
        }
        var seen = Set<String>(minimumCapacity: members.count)
        for member in members where !seen.insert(member.key).inserted { return member.key }
        return nil
    }

    /// A valid request id: 1–128 characters of `[A-Za-z0-9_:.-]` (safe in keys, URLs and JSON).
    public static func isValidRequestId(_ id: String) -> Bool {
        (1...128).contains(id.utf8.count) && id.utf8.allSatisfy(isRequestIdByte)
    }

    /// One byte of a valid request id: `[A-Za-z0-9_:.-]`.
    public static func isRequestIdByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "_"), UInt8(ascii: ":"), UInt8(ascii: "."), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}

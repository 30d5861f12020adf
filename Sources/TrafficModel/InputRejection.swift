/// Why a Kafka message was not aggregated: the dead-letter reason.
public struct InputRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// A stable, low-cardinality name used as the metrics label and the dead-letter header.
    public enum Reason: String, Sendable, CaseIterable {
        case oversized = "oversized"
        case invalidUTF8 = "invalid_utf8"
        case malformedJSON = "malformed_json"
        case missingField = "missing_field"
        case wrongType = "wrong_type"
        case invalidValue = "invalid_value"
        case unknownRiskLevel = "unknown_risk_level"
    }

    public var reason: Reason
    /// What is wrong and where (field name, byte offset).
    public var detail: String

    public init(_ reason: Reason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    public var description: String { "\(reason.rawValue): \(detail)" }
}

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
        /// A top-level field the aggregator writes itself (`position`, …) was supplied.
        case reservedField = "reserved_field"
        /// A top-level field name appears twice (readers would disagree on its value).
        case duplicateField = "duplicate_field"
        /// `timestamp` is further ahead of the aggregator's clock than the allowed skew.
        case timestampInFuture = "timestamp_in_future"
        /// The merged result (message plus detection, frame image moved out) is over the bound.
        case resultTooLarge = "result_too_large"
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

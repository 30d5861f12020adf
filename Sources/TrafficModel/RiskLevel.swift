/// The risk scale of an assessment, ordered from harmless to worst.
public enum RiskLevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case none = 0, low, medium, high, critical

    /// Parses the wire form (`none`, `low`, `medium`, `high`, `critical`).
    public init?(name: String) {
        switch name {
        case "none": self = .none
        case "low": self = .low
        case "medium": self = .medium
        case "high": self = .high
        case "critical": self = .critical
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .low: "low"
        case .medium: "medium"
        case .high: "high"
        case .critical: "critical"
        }
    }

    public static func < (a: RiskLevel, b: RiskLevel) -> Bool { a.rawValue < b.rawValue }
}

/// When a result is an alert: its level is at or above `minimumLevel`, or dangerous driving
/// was seen (SPEC §4).
public struct AlertRule: Sendable, Equatable {
    public var minimumLevel: RiskLevel

    public init(minimumLevel: RiskLevel = .high) {
        self.minimumLevel = minimumLevel
    }

    public func isAlert(level: RiskLevel, dangerousDriving: Bool) -> Bool {
        dangerousDriving || level >= minimumLevel
    }
}

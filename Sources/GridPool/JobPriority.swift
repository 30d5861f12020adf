/// Which tasks workers take first.
public enum JobPriority: String, Sendable, Codable, CaseIterable {
    case high, normal
}

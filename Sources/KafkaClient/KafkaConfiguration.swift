import CRdKafka

/// librdkafka properties, passed through unchanged.
///
/// Any key librdkafka knows can be set (`security.protocol`, `sasl.mechanisms`, `ssl.ca.location`,
/// …), so TLS and SASL need no code. CLIs take them as repeatable `-X key=value`; services also
/// read `KAFKA_PROPERTIES` (comma-separated `key=value`) from the environment.
public struct KafkaConfiguration: Sendable, Equatable, CustomStringConvertible {
    public var properties: [String: String]

    public init(_ properties: [String: String] = [:]) {
        self.properties = properties
    }

    public subscript(key: String) -> String? {
        get { properties[key] }
        set { properties[key] = newValue }
    }

    /// Adds `key=value` assignments; throws naming the assignment that has no `=`.
    public mutating func apply(assignments: [String]) throws(KafkaError) {
        for assignment in assignments {
            guard let eq = assignment.firstIndex(of: "="), eq != assignment.startIndex else {
                throw KafkaError(kind: .configuration, message: "'\(assignment)' is not key=value")
            }
            properties[String(assignment[..<eq]).trimmingSpaces] = String(assignment[assignment.index(after: eq)...]).trimmingSpaces
        }
    }

    /// Parses the comma-separated `KAFKA_PROPERTIES` form.
    public mutating func apply(environmentList: String) throws(KafkaError) {
        try apply(assignments: environmentList.split(separator: ",").map(String.init).filter { !$0.trimmingSpaces.isEmpty })
    }

    /// Properties whose values are never printed.
    public static func isSecret(_ key: String) -> Bool {
        let k = key.lowercased()
        return k.contains("password") || k.contains("secret") || k.hasSuffix(".key.pem") || k.contains("sasl.oauthbearer.config")
    }

    /// `key=value` pairs sorted by key, secrets masked: safe to log.
    public var description: String {
        properties.keys.sorted().map { "\($0)=\(Self.isSecret($0) ? "***" : properties[$0]!)" }.joined(separator: " ")
    }

    /// Builds a librdkafka configuration object; the caller owns it.
    func makeNative() throws(KafkaError) -> OpaquePointer {
        guard let conf = rd_kafka_conf_new() else {
            throw KafkaError(kind: .configuration, message: "rd_kafka_conf_new failed")
        }
        var errorText = [CChar](repeating: 0, count: 512)
        for key in properties.keys.sorted() {
            let value = properties[key]!
            if rd_kafka_conf_set(conf, key, value, &errorText, errorText.count) != RD_KAFKA_CONF_OK {
                rd_kafka_conf_destroy(conf)
                let shown = Self.isSecret(key) ? "***" : value
                throw KafkaError(kind: .configuration, message: "property \(key)=\(shown): \(String(nulTerminated: errorText))")
            }
        }
        return conf
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while s.first == " " || s.first == "\t" { s = s.dropFirst() }
        while s.last == " " || s.last == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// Reading hyper-parameters: typed values with the parameter named in every error.
struct ParameterReader {
    let algorithm: String
    var given: [String: String]
    private(set) var used: Set<String> = []

    init(algorithm: String, _ given: [String: String]) {
        self.algorithm = algorithm
        self.given = given
    }

    mutating func text(_ name: String) -> String? {
        used.insert(name)
        return given[name]
    }

    mutating func int(_ name: String, default value: Int?, range: ClosedRange<Int>) throws(ExperimentError) -> Int? {
        guard let text = text(name), text.lowercased() != "none" else { return value }
        guard let parsed = Int(text), range.contains(parsed) else {
            throw ExperimentError(.parameter, "\(algorithm): --param \(name)=\(text): expected an integer from \(range.lowerBound) to \(range.upperBound)")
        }
        return parsed
    }

    mutating func double(_ name: String, default value: Double, minimum: Double, exclusive: Bool = false) throws(ExperimentError) -> Double {
        guard let text = text(name) else { return value }
        guard let parsed = Double(text), parsed.isFinite, exclusive ? parsed > minimum : parsed >= minimum else {
            throw ExperimentError(.parameter, "\(algorithm): --param \(name)=\(text): expected a number \(exclusive ? ">" : "≥") \(minimum)")
        }
        return parsed
    }

    mutating func bool(_ name: String, default value: Bool) throws(ExperimentError) -> Bool {
        guard let text = text(name) else { return value }
        switch text.lowercased() {
        case "true", "1", "yes", "on": return true
        case "false", "0", "no", "off": return false
        default: throw ExperimentError(.parameter, "\(algorithm): --param \(name)=\(text): expected true or false")
        }
    }

    /// Refuses parameters nobody asked for (a typo must not pass silently).
    func finish(known: [(name: String, meaning: String)]) throws(ExperimentError) {
        let unknown = Set(given.keys).subtracting(used)
        guard unknown.isEmpty else {
            throw ExperimentError(.parameter, "\(algorithm): unknown parameter \(unknown.sorted().joined(separator: ", ")); known: \(known.map(\.name).joined(separator: ", "))")
        }
    }
}

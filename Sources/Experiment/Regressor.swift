/// A regression algorithm: built from `--param name=value` hyper-parameters, fitted on training
/// rows, then predicting. A new algorithm is one file conforming to this and one line in
/// `Regressors.all`.
public protocol Regressor: Sendable {
    /// The short name used on the command line and in results (`rf`).
    static var name: String { get }
    /// The display name (`RandomForest`).
    static var title: String { get }
    /// Hyper-parameter names it accepts, each with its default, for `--help` and errors.
    static var parameterHelp: [(name: String, meaning: String)] { get }

    /// Reads the hyper-parameters; unknown names and bad values are refused.
    init(parameters: [String: String]) throws(ExperimentError)

    /// The effective hyper-parameters (defaults filled in), recorded with the results.
    var parameters: [String: String] { get }

    /// Trains on `x` (one row per sample) and `y`.
    func fit(_ x: Matrix, _ y: [Double]) throws(ExperimentError) -> any FittedRegressor
}

/// A trained model.
public protocol FittedRegressor: Sendable {
    func predict(_ x: Matrix) -> [Double]
}

/// Every algorithm the tool knows.
public enum Regressors {
    public static let all: [any Regressor.Type] = [
        RandomForestRegressor.self,
        SupportVectorRegressor.self,
        LinearRegressor.self,
    ]

    public static var names: [String] { all.map { $0.name } }

    public static func named(_ name: String) throws(ExperimentError) -> any Regressor.Type {
        guard let type = all.first(where: { $0.name == name }) else {
            throw ExperimentError(.parameter, "unknown algorithm '\(name)'; known: \(names.joined(separator: ", "))")
        }
        return type
    }
}

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

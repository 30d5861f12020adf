import SupportVectorMachine

/// Epsilon-SVR with an RBF kernel through libsvm, with scikit-learn's `SVR()` defaults:
/// C=1, epsilon=0.1, gamma='scale' (1 / (features · Var(X))), tol=1e-3, shrinking on.
public struct SupportVectorRegressor: Regressor {
    public static let name = "svr"
    public static let title = "SVR"
    public static let parameterHelp: [(name: String, meaning: String)] = [
        ("C", "regularisation (default 1)"),
        ("epsilon", "width of the no-penalty tube (default 0.1)"),
        ("gamma", "RBF coefficient: 'scale' (default), 'auto' (1/features) or a number"),
        ("tol", "stopping tolerance (default 0.001)"),
        ("shrinking", "shrinking heuristic (default true)"),
        ("cache_size", "kernel cache in MB (default 200)"),
    ]

    public let c: Double
    public let epsilon: Double
    /// nil: 'scale'; a number; or -1 for 'auto'.
    public let gamma: String
    public let tolerance: Double
    public let shrinking: Bool
    public let cacheMegabytes: Double

    public init(parameters: [String: String]) throws(ExperimentError) {
        var reader = ParameterReader(algorithm: Self.name, parameters)
        c = try reader.double("C", default: 1, minimum: 0, exclusive: true)
        epsilon = try reader.double("epsilon", default: 0.1, minimum: 0)
        tolerance = try reader.double("tol", default: 1e-3, minimum: 0, exclusive: true)
        shrinking = try reader.bool("shrinking", default: true)
        cacheMegabytes = try reader.double("cache_size", default: 200, minimum: 1)
        let g = reader.text("gamma") ?? "scale"
        guard g == "scale" || g == "auto" || (Double(g).map { $0 > 0 && $0.isFinite } ?? false) else {
            throw ExperimentError(.parameter, "svr: --param gamma=\(g): expected 'scale', 'auto' or a positive number")
        }
        gamma = g
        try reader.finish(known: Self.parameterHelp)
    }

    /// The libsvm version the tool is linked against.
    public static var libsvmVersion: String { EpsilonSVR.libraryVersion }

    public var parameters: [String: String] {
        ["C": "\(c)", "epsilon": "\(epsilon)", "gamma": gamma, "tol": "\(tolerance)", "shrinking": String(shrinking), "cache_size": "\(cacheMegabytes)", "kernel": "rbf"]
    }

    /// The gamma used on `x`: 'scale' is 1 / (features · population variance of every value).
    public func gammaValue(for x: Matrix) -> Double {
        switch gamma {
        case "scale":
            let count = Double(x.values.count)
            let mean = x.values.reduce(0, +) / count
            let variance = x.values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / count
            return variance > 0 ? 1 / (Double(x.columns) * variance) : 1
        case "auto":
            return 1 / Double(x.columns)
        default:
            return Double(gamma) ?? 1
        }
    }

    struct Fitted: FittedRegressor {
        let model: EpsilonSVR
        func predict(_ x: Matrix) -> [Double] { model.predict(rowMajor: x.values) }
    }

    public func fit(_ x: Matrix, _ y: [Double]) throws(ExperimentError) -> any FittedRegressor {
        var settings = EpsilonSVR.Parameters(gamma: gammaValue(for: x))
        settings.c = c
        settings.epsilon = epsilon
        settings.tolerance = tolerance
        settings.shrinking = shrinking
        settings.cacheMegabytes = cacheMegabytes
        do throws(EpsilonSVR.Failure) {
            return Fitted(model: try EpsilonSVR(features: x.columns, rowMajor: x.values, targets: y, parameters: settings))
        } catch {
            throw ExperimentError(.training, "svr: libsvm training on \(x.rows) × \(x.columns)", cause: error)
        }
    }
}

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

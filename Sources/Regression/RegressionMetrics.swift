/// How well predictions match the truth: the figures every worker reports.
public struct RegressionMetrics: Sendable, Equatable, Codable {
    public var mse: Double
    public var rmse: Double
    public var mae: Double
    /// Coefficient of determination; 1 when the truth is constant and matched exactly, 0 when
    /// constant and missed (as scikit-learn's `r2_score`).
    public var r2: Double

    public init(actual: [Double], predicted: [Double]) {
        precondition(actual.count == predicted.count && !actual.isEmpty, "one prediction per value")
        let n = Double(actual.count)
        var squared = 0.0, absolute = 0.0, sum = 0.0
        for (a, p) in zip(actual, predicted) {
            squared += (a - p) * (a - p)
            absolute += abs(a - p)
            sum += a
        }
        let mean = sum / n
        let total = actual.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        mse = squared / n
        rmse = mse.squareRoot()
        mae = absolute / n
        r2 = total == 0 ? (squared == 0 ? 1 : 0) : 1 - squared / total
    }
}

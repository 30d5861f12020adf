import LinearAlgebra

/// Ordinary least squares with an intercept, solved by LAPACK's SVD-based `dgelsd` on centred
/// data — what scikit-learn's `LinearRegression` does, so the coefficients agree.
public struct LinearRegressor: Regressor {
    public static let name = "lr"
    public static let title = "LinearRegression"
    public static let parameterHelp: [(name: String, meaning: String)] = [
        ("fit_intercept", "fit an intercept (default true)"),
    ]

    public let fitIntercept: Bool

    public init(parameters: [String: String]) throws(ExperimentError) {
        var reader = ParameterReader(algorithm: Self.name, parameters)
        fitIntercept = try reader.bool("fit_intercept", default: true)
        try reader.finish(known: Self.parameterHelp)
    }

    public var parameters: [String: String] { ["fit_intercept": String(fitIntercept), "solver": "lapack dgelsd"] }

    /// The fitted line.
    public struct Fitted: FittedRegressor {
        public var coefficients: [Double]
        public var intercept: Double

        public func predict(_ x: Matrix) -> [Double] {
            (0..<x.rows).map { r in
                var sum = intercept
                for c in 0..<x.columns { sum += x[r, c] * coefficients[c] }
                return sum
            }
        }
    }

    public func fit(_ x: Matrix, _ y: [Double]) throws(ExperimentError) -> any FittedRegressor {
        try fitLine(x, y)
    }

    public func fitLine(_ x: Matrix, _ y: [Double]) throws(ExperimentError) -> Fitted {
        let n = Double(x.rows)
        var xOffset = [Double](repeating: 0, count: x.columns)
        var yOffset = 0.0
        var centred = x.values
        var target = y
        if fitIntercept {
            for r in 0..<x.rows { for c in 0..<x.columns { xOffset[c] += x[r, c] } }
            xOffset = xOffset.map { $0 / n }
            yOffset = y.reduce(0, +) / n
            for r in 0..<x.rows { for c in 0..<x.columns { centred[r * x.columns + c] -= xOffset[c] } }
            target = y.map { $0 - yOffset }
        }
        let solution: [Double]
        do throws(LeastSquares.Failure) {
            solution = try LeastSquares.solve(rows: x.rows, columns: x.columns, rowMajor: centred, rhs: target).solution
        } catch {
            throw ExperimentError(.training, "lr: least squares on \(x.rows) × \(x.columns)", cause: error)
        }
        var intercept = yOffset
        for c in 0..<x.columns { intercept -= xOffset[c] * solution[c] }
        return Fitted(coefficients: solution, intercept: intercept)
    }
}

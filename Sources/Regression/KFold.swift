/// Seeded K-fold cross-validation splits: the rows shuffled once with the seed, then cut into
/// `folds` parts of near-equal size (the first `rows % folds` one row larger, as scikit-learn's
/// `KFold`); fold `k` tests on part `k` and trains on the rest. The same for every parameter set.
public struct KFold: Sendable, Equatable {
    /// Per fold, its test rows (ascending).
    public var testRows: [[Int]]
    public let rows: Int

    public init(rows: Int, folds: Int, seed: UInt64) throws(ExperimentError) {
        guard folds >= 2, folds <= rows else { throw ExperimentError(.parameter, "--folds must be from 2 to the number of rows (\(rows)), got \(folds)") }
        self.rows = rows
        var order = Array(0..<rows)
        var random = SeededRandom(seed: seed)
        for i in stride(from: rows - 1, to: 0, by: -1) { order.swapAt(i, random.below(i + 1)) }
        var parts: [[Int]] = []
        var start = 0
        for k in 0..<folds {
            let size = rows / folds + (k < rows % folds ? 1 : 0)
            parts.append(order[start..<(start + size)].sorted())
            start += size
        }
        testRows = parts
    }

    /// Fold `k`'s training rows (ascending).
    public func trainRows(_ k: Int) -> [Int] {
        let test = Set(testRows[k])
        return (0..<rows).filter { !test.contains($0) }
    }
}

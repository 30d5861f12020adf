/// The training set as tree building reads it, shared read-only by every builder thread.
final class TrainingData: Sendable {
    let rows: Int
    let features: Int
    /// Column-major values: feature `f`, row `r` at `f * rows + r`.
    let columns: [Double]
    let targets: [Double]
    /// A node whose target variance is at or below this is pure (no split can help).
    let pureVariance: Double
    /// Per feature, every row index sorted by that feature's value (ties by index).
    let presorted: [Int32]

    init(x: Matrix, y: [Double]) {
        rows = x.rows
        features = x.columns
        columns = x.columnMajor
        targets = y
        let meanSquare = y.reduce(0) { $0 + $1 * $1 } / Double(max(y.count, 1))
        pureVariance = Double.ulpOfOne * max(meanSquare, Double.leastNormalMagnitude)
        var sorted = [Int32](repeating: 0, count: x.rows * x.columns)
        for f in 0..<x.columns {
            let base = f * x.rows
            let order = columns.withUnsafeBufferPointer { values in
                (0..<x.rows).sorted { a, b in
                    let va = values[base + a], vb = values[base + b]
                    return va < vb || (va == vb && a < b)
                }
            }
            for (position, row) in order.enumerated() { sorted[base + position] = Int32(row) }
        }
        presorted = sorted
    }
}

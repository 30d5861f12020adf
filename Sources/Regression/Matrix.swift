/// A dense row-major matrix of `Double`s: the training and test data of a regressor.
public struct Matrix: Sendable, Equatable {
    public var rows: Int
    public var columns: Int
    /// Row `r`, column `c` at `r * columns + c`.
    public var values: [Double]

    public init(rows: Int, columns: Int, values: [Double]) {
        precondition(values.count == rows * columns, "a matrix holds rows × columns values") // callers pass checked sizes
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    public subscript(row: Int, column: Int) -> Double { values[row * columns + column] }

    /// The given rows, in that order.
    public func rows(_ indices: [Int]) -> Matrix {
        var out: [Double] = []
        out.reserveCapacity(indices.count * columns)
        for r in indices { out.append(contentsOf: values[(r * columns)..<((r + 1) * columns)]) }
        return Matrix(rows: indices.count, columns: columns, values: out)
    }

    /// Column-major copy: column `c`, row `r` at `c * rows + r`.
    public var columnMajor: [Double] {
        var out = [Double](repeating: 0, count: values.count)
        for r in 0..<rows {
            for c in 0..<columns { out[c * rows + r] = values[r * columns + c] }
        }
        return out
    }
}

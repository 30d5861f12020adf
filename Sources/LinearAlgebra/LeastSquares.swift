import CLapack

/// Linear least squares through LAPACK (`dgelsd`: SVD-based, rank-revealing), from Debian's
/// liblapacke on OpenBLAS.
public enum LeastSquares {
    /// LAPACK refused or failed; `info` is its code.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var info: Int32
        public var description: String {
            info > 0 ? "least squares: the SVD did not converge (dgelsd info \(info)); the data may hold NaN or huge values"
                : "least squares: dgelsd rejected argument \(-info) (info \(info))"
        }
    }

    /// The `x` minimising ‖A·x − b‖₂ for the `rows`×`columns` matrix `a` (row-major) and `b`
    /// (`rows` values), with the effective rank of `a`. Singular values below `rcond` times the
    /// largest count as zero (negative: machine precision, as scipy's `lstsq` default).
    public static func solve(rows: Int, columns: Int, rowMajor a: [Double], rhs b: [Double], rcond: Double = -1) throws(Failure) -> (solution: [Double], rank: Int) {
        precondition(a.count == rows * columns && b.count == rows, "matrix and right-hand side sizes")
        precondition(rows > 0 && columns > 0, "an empty system")
        // dgelsd works column-major and overwrites both inputs.
        var matrix = [Double](repeating: 0, count: rows * columns)
        for r in 0..<rows {
            for c in 0..<columns { matrix[c * rows + r] = a[r * columns + c] }
        }
        var rhs = b + [Double](repeating: 0, count: max(0, columns - rows))
        var rank: Int32 = 0
        let info = matrix.withUnsafeMutableBufferPointer { m in
            rhs.withUnsafeMutableBufferPointer { r in
                traffic_dgelsd(Int32(rows), Int32(columns), m.baseAddress, r.baseAddress, rcond, &rank)
            }
        }
        guard info == 0 else { throw Failure(info: info) }
        return (Array(rhs.prefix(columns)), Int(rank))
    }
}

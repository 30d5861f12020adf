/// Min-max scaling to [0, 1] per feature, computed as scikit-learn's `MinMaxScaler` does
/// (`x · scale + offset`), so both give the same numbers; a constant feature becomes 0.
public struct Normalization: Sendable, Equatable {
    public var minimum: [Double]
    public var maximum: [Double]

    public init(minimum: [Double], maximum: [Double]) {
        self.minimum = minimum
        self.maximum = maximum
    }

    /// `features` (row-major) scaled.
    public func apply(_ features: [Double]) -> [Double] {
        let count = minimum.count
        // As scikit-learn's `_handle_zeros_in_scale`: a range below 10·ε counts as constant.
        let scale = zip(minimum, maximum).map { $1 - $0 < 10 * Double.ulpOfOne ? 1.0 : 1.0 / ($1 - $0) }
        let offset = zip(minimum, scale).map { -$0 * $1 }
        var out = features
        for i in out.indices {
            let f = i % count
            out[i] = out[i] * scale[f] + offset[f]
        }
        return out
    }
}

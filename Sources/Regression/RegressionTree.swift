/// One trained regression tree, as flat arrays (node 0 is the root; a leaf has feature -1).
public struct RegressionTree: Sendable {
    var feature: [Int32] = []
    var threshold: [Double] = []
    var left: [Int32] = []
    var right: [Int32] = []
    var value: [Double] = []

    public var nodeCount: Int { feature.count }

    /// The prediction for one row of feature values.
    func predict(_ row: UnsafeBufferPointer<Double>) -> Double {
        var node = 0
        while feature[node] >= 0 {
            node = Int(row[Int(feature[node])] <= threshold[node] ? left[node] : right[node])
        }
        return value[node]
    }
}

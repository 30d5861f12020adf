/// The seeded train/test split every worker of a run uses.
public struct TrainTestSplit: Sendable, Equatable {
    /// Row indices, ascending.
    public var train: [Int]
    public var test: [Int]

    /// Shuffles `0..<rows` with `seed` and takes the first ⌈rows · testFraction⌉ as the test set
    /// (as scikit-learn's `train_test_split` sizes it).
    public init(rows: Int, testFraction: Double, seed: UInt64) {
        var order = Array(0..<rows)
        var random = SeededRandom(seed: seed)
        for i in stride(from: rows - 1, to: 0, by: -1) { order.swapAt(i, random.below(i + 1)) }
        let testCount = min(rows - 1, max(1, Int((Double(rows) * testFraction).rounded(.up))))
        test = order.prefix(testCount).sorted()
        train = order.dropFirst(testCount).sorted()
    }
}

import Foundation
import Synchronization

/// A random forest of regression trees, written in Swift: CART on squared error, bootstrap
/// samples, every feature considered at each split by default (scikit-learn's regressor
/// defaults), seeded, trees built in parallel on all cores.
///
/// Splits are found on presorted feature orders: each feature is sorted once per fit; a tree
/// keeps, per feature, its in-bag rows in that order and partitions them stably at every split,
/// so finding a node's best split is one linear scan per feature (never a quadratic search),
/// and the buffers are allocated once per thread, not per node.
public struct RandomForestRegressor: Regressor {
    public static let name = "rf"
    public static let title = "RandomForest"
    public static let parameterHelp: [(name: String, meaning: String)] = [
        ("n_estimators", "trees (default 100)"),
        ("max_depth", "deepest split level, or none (default none)"),
        ("min_samples_split", "fewest samples a node needs to be split (default 2)"),
        ("min_samples_leaf", "fewest samples in a leaf (default 1)"),
        ("max_features", "features tried per split: all (default), sqrt, log2, a count or a fraction"),
        ("bootstrap", "train each tree on a bootstrap sample (default true)"),
        ("random_state", "seed (default 42)"),
        ("n_jobs", "threads; 0 or -1 for every core (default 0)"),
    ]

    public let trees: Int
    public let maxDepth: Int?
    public let minSamplesSplit: Int
    public let minSamplesLeaf: Int
    /// As given: "all", "sqrt", "log2", an integer or a fraction.
    public let maxFeatures: String
    public let bootstrap: Bool
    public let seed: UInt64
    public let threads: Int

    public init(parameters: [String: String]) throws(ExperimentError) {
        var reader = ParameterReader(algorithm: Self.name, parameters)
        trees = try reader.int("n_estimators", default: 100, range: 1...100_000) ?? 100
        maxDepth = try reader.int("max_depth", default: nil, range: 1...10_000)
        minSamplesSplit = try reader.int("min_samples_split", default: 2, range: 2...Int.max) ?? 2
        minSamplesLeaf = try reader.int("min_samples_leaf", default: 1, range: 1...Int.max) ?? 1
        bootstrap = try reader.bool("bootstrap", default: true)
        seed = UInt64(try reader.int("random_state", default: 42, range: 0...Int.max) ?? 42)
        let jobs = try reader.int("n_jobs", default: 0, range: -1...4096) ?? 0
        threads = jobs <= 0 ? ProcessInfo.processInfo.activeProcessorCount : jobs
        let features = reader.text("max_features")?.lowercased() ?? "all"
        guard ["all", "none", "1.0", "sqrt", "log2"].contains(features) || Int(features).map({ $0 >= 1 }) == true
                || Double(features).map({ $0 > 0 && $0 <= 1 }) == true else {
            throw ExperimentError(.parameter, "rf: --param max_features=\(features): expected all, sqrt, log2, a positive count or a fraction in (0, 1]")
        }
        maxFeatures = features == "none" || features == "1.0" ? "all" : features
        try reader.finish(known: Self.parameterHelp)
    }

    public var parameters: [String: String] {
        [
            "n_estimators": String(trees), "max_depth": maxDepth.map(String.init) ?? "none", "min_samples_split": String(minSamplesSplit),
            "min_samples_leaf": String(minSamplesLeaf), "max_features": maxFeatures, "bootstrap": String(bootstrap),
            "random_state": String(seed), "n_jobs": String(threads), "criterion": "squared_error",
        ]
    }

    /// Features tried at each split for `count` features.
    func featuresPerSplit(_ count: Int) -> Int {
        let value: Int = switch maxFeatures {
        case "all": count
        case "sqrt": Int(Double(count).squareRoot())
        case "log2": Int(log2(Double(count)))
        default: Int(maxFeatures) ?? Int(Double(count) * (Double(maxFeatures) ?? 1))
        }
        return min(count, max(1, value))
    }

    /// The trained forest.
    public struct Fitted: FittedRegressor {
        public let trees: [RegressionTree]
        /// The training targets' mean: trees are grown on centred targets (numerically sound
        /// variances for targets far from zero) and predict relative to it.
        public let offset: Double

        public func predict(_ x: Matrix) -> [Double] {
            x.values.withUnsafeBufferPointer { values in
                (0..<x.rows).map { r in
                    let row = UnsafeBufferPointer(rebasing: values[(r * x.columns)..<((r + 1) * x.columns)])
                    var sum = 0.0
                    for tree in trees { sum += tree.predict(row) }
                    return offset + sum / Double(trees.count)
                }
            }
        }
    }

    public func fit(_ x: Matrix, _ y: [Double]) throws(ExperimentError) -> any FittedRegressor {
        try fitForest(x, y)
    }

    public func fitForest(_ x: Matrix, _ y: [Double]) throws(ExperimentError) -> Fitted {
        guard x.rows >= 2, x.rows == y.count else { throw ExperimentError(.training, "rf: need at least 2 training rows, got \(x.rows)") }
        let offset = y.reduce(0, +) / Double(y.count)
        let data = TrainingData(x: x, y: y.map { $0 - offset })
        let settings = TreeSettings(maxDepth: maxDepth ?? Int.max, minSamplesSplit: minSamplesSplit, minSamplesLeaf: minSamplesLeaf,
                                    featuresPerSplit: featuresPerSplit(x.columns), bootstrap: bootstrap)
        let built = Mutex([RegressionTree?](repeating: nil, count: trees))
        let next = Mutex(0)
        let workers = max(1, min(threads, trees))
        let done = DispatchSemaphore(value: 0)
        let seed = self.seed
        let count = trees
        for w in 0..<workers {
            let thread = Thread {
                var builder = TreeBuilder(data: data, settings: settings)
                while true {
                    let index = next.withLock { value -> Int in
                        defer { value += 1 }
                        return value
                    }
                    guard index < count else { break }
                    var random = SeededRandom(seed: seed &+ UInt64(index) &* 0x9E37_79B9_7F4A_7C15)
                    let tree = builder.build(&random)
                    built.withLock { $0[index] = tree }
                }
                done.signal()
            }
            thread.name = "rf-\(w)"
            thread.stackSize = 8 << 20
            thread.start()
        }
        for _ in 0..<workers { done.wait() }
        return Fitted(trees: built.withLock { $0.compactMap { $0 } }, offset: offset)
    }
}

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
        trees = try reader.int("n_estimators", default: 100, range: 1...100_000)!
        maxDepth = try reader.int("max_depth", default: nil, range: 1...10_000)
        minSamplesSplit = try reader.int("min_samples_split", default: 2, range: 2...Int.max)!
        minSamplesLeaf = try reader.int("min_samples_leaf", default: 1, range: 1...Int.max)!
        bootstrap = try reader.bool("bootstrap", default: true)
        seed = UInt64(try reader.int("random_state", default: 42, range: 0...Int.max)!)
        let jobs = try reader.int("n_jobs", default: 0, range: -1...4096)!
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

struct TreeSettings: Sendable {
    var maxDepth: Int
    var minSamplesSplit: Int
    var minSamplesLeaf: Int
    var featuresPerSplit: Int
    var bootstrap: Bool
}

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

/// Builds trees one after another on one thread, reusing its buffers.
struct TreeBuilder {
    let data: TrainingData
    let settings: TreeSettings
    /// Bootstrap count per row (0: out of bag).
    var weight: [Double]
    /// Per feature, the in-bag rows of the tree in that feature's order; a node owns the same
    /// position range in every feature's segment.
    var order: [Int32]
    var scratch: [Int32]
    var goesLeft: [Bool]
    var featureOrder: [Int]
    var stack: [(lo: Int, hi: Int, depth: Int, node: Int)] = []

    init(data: TrainingData, settings: TreeSettings) {
        self.data = data
        self.settings = settings
        weight = [Double](repeating: 0, count: data.rows)
        order = [Int32](repeating: 0, count: data.rows * data.features)
        scratch = [Int32](repeating: 0, count: data.rows)
        goesLeft = [Bool](repeating: false, count: data.rows)
        featureOrder = Array(0..<data.features)
        stack.reserveCapacity(128)
    }

    /// Two values closer than this are one (scikit-learn's FEATURE_THRESHOLD).
    static let featureThreshold = 1e-7

    mutating func build(_ random: inout SeededRandom) -> RegressionTree {
        let n = data.rows
        let featureCount = data.features
        for i in 0..<n { self.weight[i] = self.settings.bootstrap ? 0 : 1 }
        if self.settings.bootstrap { for _ in 0..<n { self.weight[random.below(n)] += 1 } }
        var inBag = 0
        for i in 0..<n where self.weight[i] > 0 { inBag += 1 }
        let m = inBag
        var tree = RegressionTree()
        // At most 2m − 1 nodes, fewer when depth or leaf size bound the tree.
        let depthBound = self.settings.maxDepth < 30 ? (1 << (self.settings.maxDepth + 1)) - 1 : Int.max
        let capacity = min(2 * m + 1, depthBound, 2 * m / self.settings.minSamplesLeaf + 1)
        tree.feature.reserveCapacity(capacity)
        tree.threshold.reserveCapacity(capacity)
        tree.left.reserveCapacity(capacity)
        tree.right.reserveCapacity(capacity)
        tree.value.reserveCapacity(capacity)

        let settings = self.settings
        // The buffers leave `self` for the build (so the closures below borrow locals, not
        // `self`) and come back at the end: no copies, no allocation per tree or node.
        var weight = self.weight, order = self.order, scratch = self.scratch, goesLeft = self.goesLeft
        var featureOrder = self.featureOrder, stack = self.stack
        // Every tree starts from the same feature order: a tree depends on its seed alone, not on
        // the trees its thread built before.
        for f in 0..<featureCount { featureOrder[f] = f }
        self.weight = []; self.order = []; self.scratch = []; self.goesLeft = []; self.featureOrder = []; self.stack = []
        defer {
            self.weight = weight; self.order = order; self.scratch = scratch; self.goesLeft = goesLeft
            self.featureOrder = featureOrder; self.stack = stack
        }
        data.presorted.withUnsafeBufferPointer { presorted in
        data.columns.withUnsafeBufferPointer { columns in
        data.targets.withUnsafeBufferPointer { y in
        weight.withUnsafeMutableBufferPointer { weight in
        order.withUnsafeMutableBufferPointer { order in
        scratch.withUnsafeMutableBufferPointer { scratch in
        goesLeft.withUnsafeMutableBufferPointer { goesLeft in
            // Each feature's in-bag rows, in that feature's order.
            for f in 0..<featureCount {
                var p = f * m
                for k in 0..<n {
                    let row = presorted[f * n + k]
                    if weight[Int(row)] > 0 { order[p] = row; p += 1 }
                }
            }
            func newNode() -> Int {
                tree.feature.append(-1); tree.threshold.append(0); tree.left.append(-1); tree.right.append(-1); tree.value.append(0)
                return tree.feature.count - 1
            }
            stack.removeAll(keepingCapacity: true)
            stack.append((0, m, 0, newNode()))
            while let (lo, hi, depth, node) = stack.popLast() {
                // Node statistics (any feature's segment holds the node's rows).
                var sumW = 0.0, sumY = 0.0, sumYY = 0.0
                for p in lo..<hi {
                    let row = Int(order[p])
                    let w = weight[row], v = y[row]
                    sumW += w; sumY += w * v; sumYY += w * v * v
                }
                let mean = sumY / sumW
                tree.value[node] = mean
                let count = hi - lo
                let impurity = sumYY / sumW - mean * mean
                if depth >= settings.maxDepth || count < settings.minSamplesSplit || count < 2 * settings.minSamplesLeaf || impurity <= data.pureVariance {
                    continue
                }
                // The best split: maximise sumL²/wL + sumR²/wR (squared error's proxy).
                var bestProxy = -Double.infinity
                var bestFeature = -1
                var bestPosition = -1
                var bestThreshold = 0.0
                for i in 0..<featureCount {
                    let j = i + random.below(featureCount - i)
                    featureOrder.swapAt(i, j)
                }
                var tried = 0
                for fi in 0..<featureCount where tried < settings.featuresPerSplit {
                    let f = featureOrder[fi]
                    let base = f * m
                    let column = f * n
                    if columns[column + Int(order[base + hi - 1])] <= columns[column + Int(order[base + lo])] + Self.featureThreshold { continue }
                    tried += 1
                    var leftW = 0.0, leftY = 0.0
                    let maxLeft = count - settings.minSamplesLeaf
                    var p = lo
                    while p < hi - 1 {
                        let row = Int(order[base + p])
                        let w = weight[row]
                        leftW += w
                        leftY += w * y[row]
                        let leftCount = p - lo + 1
                        if leftCount > maxLeft { break }
                        let v1 = columns[column + row]
                        let v2 = columns[column + Int(order[base + p + 1])]
                        if leftCount >= settings.minSamplesLeaf, v2 > v1 + Self.featureThreshold {
                            let rightW = sumW - leftW, rightY = sumY - leftY
                            let proxy = leftY * leftY / leftW + rightY * rightY / rightW
                            if proxy > bestProxy {
                                bestProxy = proxy
                                bestFeature = f
                                bestPosition = p
                                var threshold = v1 / 2 + v2 / 2
                                if threshold == v2 || !threshold.isFinite { threshold = v1 }
                                bestThreshold = threshold
                            }
                        }
                        p += 1
                    }
                }
                guard bestFeature >= 0 else { continue }
                // Partition every feature's segment stably: rows of the left child first.
                let splitBase = bestFeature * m
                for p in lo..<hi { goesLeft[Int(order[splitBase + p])] = p <= bestPosition }
                let leftCount = bestPosition - lo + 1
                for f in 0..<featureCount where f != bestFeature {
                    let base = f * m
                    var l = base + lo
                    var r = 0
                    for p in (base + lo)..<(base + hi) {
                        let row = order[p]
                        if goesLeft[Int(row)] { order[l] = row; l += 1 } else { scratch[r] = row; r += 1 }
                    }
                    for k in 0..<r { order[l + k] = scratch[k] }
                }
                let leftNode = newNode()
                let rightNode = newNode()
                tree.feature[node] = Int32(bestFeature)
                tree.threshold[node] = bestThreshold
                tree.left[node] = Int32(leftNode)
                tree.right[node] = Int32(rightNode)
                stack.append((lo + leftCount, hi, depth + 1, rightNode))
                stack.append((lo, lo + leftCount, depth + 1, leftNode))
            }
        }}}}}}}
        return tree
    }
}

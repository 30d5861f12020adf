/// The limits a tree is grown within (from the forest's hyper-parameters).
struct TreeSettings: Sendable {
    var maxDepth: Int
    var minSamplesSplit: Int
    var minSamplesLeaf: Int
    var featuresPerSplit: Int
    var bootstrap: Bool
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

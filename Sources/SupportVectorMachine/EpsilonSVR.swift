import CSVM
public import Foundation

/// Epsilon support vector regression with an RBF kernel, through libsvm (Debian's libsvm-dev).
///
/// A trained model keeps pointers into its training vectors (libsvm's design), so this class
/// owns both: the nodes are freed after the model, in `deinit`. Thread-safe for `predict` once
/// trained (libsvm only reads the model).
public final class EpsilonSVR: @unchecked Sendable {
    /// The hyper-parameters, named as in scikit-learn's `SVR`.
    public struct Parameters: Sendable, Equatable {
        public var c = 1.0
        public var epsilon = 0.1
        /// RBF kernel coefficient; scikit-learn's `gamma='scale'` is `1 / (features · Var(X))`.
        public var gamma: Double
        public var tolerance = 1e-3
        public var shrinking = true
        /// Kernel cache in MB.
        public var cacheMegabytes = 200.0

        public init(gamma: Double) {
            self.gamma = gamma
        }
    }

    /// libsvm refused the parameters.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { "libsvm: \(message)" }
    }

    private let model: UnsafeMutablePointer<svm_model>
    private let nodes: UnsafeMutablePointer<svm_node>
    private let rowPointers: UnsafeMutablePointer<UnsafeMutablePointer<svm_node>?>
    private let targets: UnsafeMutablePointer<Double>
    public let featureCount: Int

    /// libsvm's version, e.g. `3.24`.
    public static var libraryVersion: String {
        let v = Int(traffic_svm_version())
        return "\(v / 100).\(v % 100)"
    }

    /// Support vectors of the trained model.
    public var supportVectorCount: Int { Int(model.pointee.l) }

    /// Trains on `rows`×`features` values (row-major) and their targets.
    public init(features: Int, rowMajor x: [Double], targets y: [Double], parameters: Parameters) throws(Failure) {
        let rows = y.count
        precondition(x.count == rows * features && rows > 0 && features > 0, "training data sizes")
        featureCount = features
        traffic_svm_silence()
        // Dense rows: every feature (index 1…n), then the terminator (index -1).
        let stride = features + 1
        nodes = .allocate(capacity: rows * stride)
        rowPointers = .allocate(capacity: rows)
        targets = .allocate(capacity: rows)
        for r in 0..<rows {
            for f in 0..<features { nodes[r * stride + f] = svm_node(index: Int32(f + 1), value: x[r * features + f]) }
            nodes[r * stride + features] = svm_node(index: -1, value: 0)
            rowPointers[r] = nodes + r * stride
            targets[r] = y[r]
        }
        var problem = svm_problem(l: Int32(rows), y: targets, x: rowPointers)
        var param = svm_parameter()
        param.svm_type = Int32(EPSILON_SVR)
        param.kernel_type = Int32(RBF)
        param.gamma = parameters.gamma
        param.C = parameters.c
        param.p = parameters.epsilon
        param.eps = parameters.tolerance
        param.shrinking = parameters.shrinking ? 1 : 0
        param.cache_size = parameters.cacheMegabytes
        param.probability = 0
        param.nr_weight = 0
        if let error = svm_check_parameter(&problem, &param) {
            let message = String(cString: error)
            nodes.deallocate(); rowPointers.deallocate(); targets.deallocate()
            throw Failure(message: message)
        }
        guard let trained = svm_train(&problem, &param) else {
            nodes.deallocate(); rowPointers.deallocate(); targets.deallocate()
            throw Failure(message: "svm_train returned no model")
        }
        model = trained
    }

    deinit {
        var pointer: UnsafeMutablePointer<svm_model>? = model
        svm_free_and_destroy_model(&pointer)
        nodes.deallocate()
        rowPointers.deallocate()
        targets.deallocate()
    }

    /// Predictions for `x` (row-major, `featureCount` values per row), spread over `threads`
    /// threads (libsvm only reads the model; each thread has its own row buffer).
    public func predict(rowMajor x: [Double], threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> [Double] {
        let rows = x.count / featureCount
        let workers = max(1, min(threads, rows / 256))
        let out = UnsafeMutableBufferPointer<Double>.allocate(capacity: max(rows, 1))
        defer { out.deallocate() }
        let features = featureCount
        let model = UncheckedModel(pointer: self.model)
        let output = UncheckedOutput(pointer: out)
        let done = DispatchSemaphore(value: 0)
        for worker in 0..<workers {
            Thread {
                var row = [svm_node](repeating: svm_node(index: -1, value: 0), count: features + 1)
                var r = worker
                while r < rows {
                    for f in 0..<features { row[f] = svm_node(index: Int32(f + 1), value: x[r * features + f]) }
                    output.pointer[r] = row.withUnsafeBufferPointer { svm_predict(model.pointer, $0.baseAddress) }
                    r += workers
                }
                done.signal()
            }.start()
        }
        for _ in 0..<workers { done.wait() }
        return Array(out.prefix(rows))
    }

    /// The model and output pointers handed to the prediction threads (each writes other rows).
    private struct UncheckedModel: @unchecked Sendable { let pointer: UnsafeMutablePointer<svm_model> }
    private struct UncheckedOutput: @unchecked Sendable { let pointer: UnsafeMutableBufferPointer<Double> }
}

import Durations
import OwnThread

/// The one way a model is evaluated, for the pipeline's algorithm worker and the grid pool's
/// tasks alike: fit on the training rows and predict the test rows on a thread of its own (both
/// are long CPU-bound calls, never run on Swift's cooperative pool), time each, and score the
/// predictions. Non-finite predictions are refused: they would poison every figure after them.
public struct ModelEvaluation: Sendable {
    /// The rows of each side, by index into the data set.
    public var train: [Int]
    public var test: [Int]

    public init(train: [Int], test: [Int]) {
        self.train = train
        self.test = test
    }

    /// What an evaluation measured.
    public struct Outcome: Sendable, Equatable {
        public var metrics: RegressionMetrics
        /// The test rows' true targets and the predictions, in `test` order.
        public var actual: [Double]
        public var predicted: [Double]
        public var fitSeconds: Double
        public var predictSeconds: Double
    }

    /// Stack of the training thread (deep trees recurse).
    public static let stackSize = 8 << 20

    /// Fits `regressor` on the training rows of `features`/`targets` and scores it on the test rows.
    public func run(_ regressor: any Regressor, features: Matrix, targets: [Double]) async throws(ExperimentError) -> Outcome {
        guard !train.isEmpty, !test.isEmpty else {
            throw ExperimentError(.training, "\(type(of: regressor).name): \(train.count) training and \(test.count) test rows: both sides need rows")
        }
        guard features.rows == targets.count, (train + test).allSatisfy({ $0 >= 0 && $0 < features.rows }) else {
            throw ExperimentError(.training, "\(type(of: regressor).name): row indices outside the \(features.rows) rows of the data set")
        }
        let trainX = features.rows(train), testX = features.rows(test)
        let trainY = train.map { targets[$0] }, testY = test.map { targets[$0] }
        let name = type(of: regressor).name
        return try await onOwnThread(stackSize: Self.stackSize) { () throws(ExperimentError) -> Outcome in
            let clock = ContinuousClock()
            let fitStart = clock.now
            let model = try regressor.fit(trainX, trainY)
            let predictStart = clock.now
            let predicted = model.predict(testX)
            let end = clock.now
            guard predicted.count == testY.count else {
                throw ExperimentError(.training, "\(name): \(predicted.count) predictions for \(testY.count) test rows")
            }
            let metrics = RegressionMetrics(actual: testY, predicted: predicted)
            guard metrics.mse.isFinite, predicted.allSatisfy(\.isFinite) else {
                throw ExperimentError(.training, "\(name): predictions or their error are not finite (targets too large for double precision?)")
            }
            return Outcome(metrics: metrics, actual: testY, predicted: predicted,
                           fitSeconds: (predictStart - fitStart).inSeconds, predictSeconds: (end - predictStart).inSeconds)
        }
    }
}

public import Regression

/// What one worker reports for its algorithm: stored as JSON in the run's results hash and
/// written by the collector into `training_results.json`.
public struct AlgorithmResult: Sendable, Codable, Equatable {
    public struct Split: Sendable, Codable, Equatable {
        public var seed: UInt64
        public var testFraction: Double
        public var train: Int
        public var test: Int

        enum CodingKeys: String, CodingKey {
            case seed, train, test
            case testFraction = "test_fraction"
        }
    }

    public struct DataShape: Sendable, Codable, Equatable {
        public var samples: Int
        public var features: Int
        public var featureNames: [String]
        public var target: String

        enum CodingKeys: String, CodingKey {
            case samples, features, target
            case featureNames = "feature_names"
        }
    }

    public var algorithm: String
    public var title: String
    public var run: String
    public var stream: String
    public var data: DataShape
    public var split: Split
    public var parameters: [String: String]
    public var metrics: RegressionMetrics
    public var readSeconds: Double
    public var fitSeconds: Double
    public var predictSeconds: Double
    /// The test rows (`task_id`s, ascending), their true targets and the predictions.
    public var testIndices: [Int]
    public var actual: [Double]
    public var predicted: [Double]
    public var host: String
    public var pid: Int32
    public var finishedAt: String

    enum CodingKeys: String, CodingKey {
        case algorithm, title, run, stream, data, split, parameters, metrics, actual, predicted, host, pid
        case readSeconds = "read_seconds"
        case fitSeconds = "fit_seconds"
        case predictSeconds = "predict_seconds"
        case testIndices = "test_indices"
        case finishedAt = "finished_at"
    }
}

import Foundation

/// The content of `training_results.json`.
public struct TrainingResults: Sendable, Codable {
    public struct DatasetInfo: Sendable, Codable {
        public var name: String
        public var samples: Int
        public var features: Int
        public var featureNames: [String]
        public var target: String
        enum CodingKeys: String, CodingKey {
            case name, samples, features, target
            case featureNames = "feature_names"
        }
    }

    public var run: String
    public var stream: String
    public var dataset: DatasetInfo
    public var split: AlgorithmResult.Split
    public var algorithms: [String: AlgorithmResult]
    public var versions: [String: String]
    public var collectedAt: String

    enum CodingKeys: String, CodingKey {
        case run, stream, dataset, split, algorithms, versions
        case collectedAt = "collected_at"
    }

    public static var currentVersions: [String: String] {
        [
            "traffic-experiment": ExperimentVersion.tool,
            "libsvm": ExperimentVersion.libsvm,
            "lapack": "liblapacke (dgelsd) on OpenBLAS",
            "swift": ExperimentVersion.swift,
            "os": ProcessInfo.processInfo.operatingSystemVersionString,
        ]
    }
}

import Foundation
public import RedisClient

/// Gathers a run's results once every requested algorithm has reported, and writes
/// `training_results.json` and `training_report.html`.
public struct Collector: Sendable {
    public var keys: ExperimentKeys
    public var algorithms: [String]
    public var timeout: Duration = .seconds(300)

    public init(keys: ExperimentKeys, algorithms: [String]) {
        self.keys = keys
        self.algorithms = algorithms
    }

    /// The collected run.
    public struct Collected: Sendable {
        public var run: String
        public var dataset: String
        public var results: [String: AlgorithmResult]
    }

    /// Waits (polling, at most `timeout`) until each algorithm's result of `run` (default: the
    /// stream's current run) is stored.
    public func collect(from redis: RedisClient, run given: String? = nil) async throws(ExperimentError) -> Collected {
        let store = ResultStore(keys: keys)
        let run: String
        if let given { run = given } else { run = try await store.currentRun(on: redis) }
        let deadline = ContinuousClock.now + timeout
        var results: [String: AlgorithmResult] = [:]
        while true {
            results = try await store.results(run: run, algorithms: algorithms, on: redis)
            let missing = algorithms.filter { results[$0] == nil }
            if missing.isEmpty { break }
            if ContinuousClock.now > deadline {
                let have = results.keys.sorted().joined(separator: ", ")
                throw ExperimentError(.timeout, "after \(timeout) no result of run \(run) for \(missing.joined(separator: ", ")) (have: \(have.isEmpty ? "none" : have)); are those workers running?")
            }
            try? await Task.sleep(for: .milliseconds(25))
        }
        var dataset = "unknown"
        if let name = try? await redis.send(.hget(keys.run(run), field: "dataset")) { dataset = String(decoding: name, as: UTF8.self) }
        return Collected(run: run, dataset: dataset, results: results.filter { algorithms.contains($0.key) })
    }

    /// Writes `training_results.json` and `training_report.html` into `directory`; returns their paths.
    public func write(_ collected: Collected, to directory: String) throws(ExperimentError) -> (json: String, html: String) {
        let ordered = algorithms.compactMap { collected.results[$0] }
        guard let first = ordered.first else { throw ExperimentError(.io, "no results to write") }
        let document = TrainingResults(
            run: collected.run, stream: keys.stream,
            dataset: .init(name: collected.dataset, samples: first.data.samples, features: first.data.features, featureNames: first.data.featureNames, target: first.data.target),
            split: first.split, algorithms: Dictionary(algorithms.compactMap { name in collected.results[name].map { (name, $0) } }, uniquingKeysWith: { first, _ in first }),
            versions: TrainingResults.currentVersions, collectedAt: ISO8601DateFormatter().string(from: Date()))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let json = URL(fileURLWithPath: directory).appendingPathComponent("training_results.json")
        let html = URL(fileURLWithPath: directory).appendingPathComponent("training_report.html")
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try encoder.encode(document).write(to: json, options: .atomic)
            try Data(ReportPage.html(document, order: algorithms).utf8).write(to: html, options: .atomic)
        } catch {
            throw ExperimentError(.io, "writing results into \(directory): \(error)")
        }
        return (json.path, html.path)
    }
}

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

    static var currentVersions: [String: String] {
        [
            "traffic-experiment": ExperimentVersion.tool,
            "libsvm": ExperimentVersion.libsvm,
            "lapack": "liblapacke (dgelsd) on OpenBLAS",
            "swift": ExperimentVersion.swift,
            "os": ProcessInfo.processInfo.operatingSystemVersionString,
        ]
    }
}

/// Versions recorded with results.
public enum ExperimentVersion {
    public static let tool = "1.0.0"
    public static var libsvm: String { SupportVectorRegressor.libsvmVersion }
    public static var swift: String {
        #if compiler(>=6.3)
        "6.3"
        #elseif compiler(>=6.2)
        "6.2"
        #else
        "6"
        #endif
    }
}

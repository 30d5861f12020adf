import Foundation
import ReportHTML
public import Regression
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
                throw ExperimentError(.timeout, "after \(timeout) no result of run \(run) for \(missing.joined(separator: ", ")) (have: \(have.isEmpty ? "none" : have))", hint: "are those workers running?")
            }
            do { try await Task.sleep(for: .milliseconds(25)) } catch { throw ExperimentError(.timeout, "collecting run \(run): cancelled", cause: error) }
        }
        let name: [UInt8]?
        do { name = try await redis.send(.hget(keys.run(run), field: "dataset")) } catch { throw .redis(error, "reading the data set name of run \(run)") }
        let dataset = name.map { String(decoding: $0, as: UTF8.self) } ?? "unknown"
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
            throw ExperimentError(.io, "writing results into \(directory)", cause: error)
        }
        return (json.path, html.path)
    }
}

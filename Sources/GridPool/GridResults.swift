public import Foundation
public import Regression

/// A grid-search job's final results: its parameter sets ranked by mean cross-validation score
/// (R² on the held-out fold, higher is better) with the standard deviation over folds, and the
/// tasks that failed. Written once per job by the finaliser; the content of the results JSON.
public struct GridResults: Sendable, Codable, Equatable {
    /// One parameter set's cross-validated scores.
    public struct Entry: Sendable, Codable, Equatable {
        public var rank: Int
        public var algorithm: String
        public var title: String
        public var parameterSet: Int
        public var parameters: [String: String]
        /// Mean and population standard deviation of R² over the folds that finished.
        public var meanR2: Double
        public var stdR2: Double
        public var meanMSE: Double
        public var stdMSE: Double
        /// R² per fold (nil where the fold's task failed).
        public var foldR2: [Double?]
        public var foldsFailed: Int
        public var meanFitSeconds: Double

        /// "rf #3" with its parameters, for tables and charts.
        public var label: String {
            let text = parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            return "\(algorithm) #\(parameterSet)" + (text.isEmpty ? " (defaults)" : " \(text)")
        }
    }

    /// A task that failed for good.
    public struct Failure: Sendable, Codable, Equatable {
        public var task: String
        public var attempts: Int
        public var error: String
    }

    public var job: String
    public var dataset: String
    public var folds: Int
    public var seed: UInt64
    public var priority: String
    public var created: String
    public var tasks: Int
    public var done: Int
    public var failed: Int
    /// From the earliest recorded task start to the last finish.
    public var wallSeconds: Double
    /// Complete parameter sets first (best mean R² first), then those with failed folds.
    public var ranking: [Entry]
    public var failures: [Failure]
    public var finaliser: String
    public var finalisedAt: String

    /// Ranks a job's task results. Sets with failed folds rank after every complete set; sets
    /// with no finished fold appear only among the failures.
    public static func rank(_ job: JobDescription, results: [TaskResult], states: [String: TaskRecord], finaliser: String) -> GridResults {
        struct Key: Hashable { var algorithm: String; var set: Int }
        var grouped: [Key: [TaskResult]] = [:]
        // Only tasks recorded done count (a result of a run the job no longer counts is left out).
        for result in results where states[result.task]?.state == .done {
            grouped[Key(algorithm: result.algorithm, set: result.parameterSet), default: []].append(result)
        }
        var entries: [Entry] = []
        for (key, unordered) in grouped {
            // Fold order, so the sums (and so the scores) do not depend on who finished first.
            let group = unordered.sorted { $0.fold < $1.fold }
            var perFold = [Double?](repeating: nil, count: job.folds)
            for result in group where result.fold >= 0 && result.fold < job.folds { perFold[result.fold] = result.metrics.r2 }
            let r2 = group.map(\.metrics.r2), mse = group.map(\.metrics.mse)
            entries.append(Entry(
                rank: 0, algorithm: key.algorithm, title: Regressors.all.first { $0.name == key.algorithm }?.title ?? key.algorithm, parameterSet: key.set,
                parameters: group[0].parameters, meanR2: mean(r2), stdR2: deviation(r2), meanMSE: mean(mse), stdMSE: deviation(mse),
                foldR2: perFold, foldsFailed: job.folds - perFold.compactMap { $0 }.count, meanFitSeconds: mean(group.map(\.fitSeconds))))
        }
        entries.sort { a, b in
            if (a.foldsFailed == 0) != (b.foldsFailed == 0) { return a.foldsFailed == 0 }
            if a.meanR2 != b.meanR2 { return a.meanR2 > b.meanR2 }
            return (a.algorithm, a.parameterSet) < (b.algorithm, b.parameterSet)
        }
        for index in entries.indices { entries[index].rank = index + 1 }
        let failures = states.filter { $0.value.state == .failed }
            .map { Failure(task: $0.key, attempts: $0.value.attempts, error: $0.value.lastError ?? "") }
            .sorted { $0.task < $1.task }
        let starts = states.values.compactMap(\.startedAt), finishes = states.values.compactMap(\.finishedAt)
        let wall = (starts.min().flatMap { start in finishes.max().map { max(0, $0 - start) } }) ?? 0
        return GridResults(job: job.id, dataset: job.dataset, folds: job.folds, seed: job.seed, priority: job.priority.rawValue, created: job.created,
                           tasks: job.taskCount, done: states.values.filter { $0.state == .done }.count, failed: failures.count, wallSeconds: wall,
                           ranking: entries, failures: failures, finaliser: finaliser, finalisedAt: ISO8601DateFormatter().string(from: Date()))
    }

    static func mean(_ values: [Double]) -> Double { values.isEmpty ? .nan : values.reduce(0, +) / Double(values.count) }

    static func deviation(_ values: [Double]) -> Double {
        guard values.count > 1 else { return 0 }
        let m = mean(values)
        return (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(values.count)).squareRoot()
    }

    /// Pretty, sorted-key JSON.
    public func encoded() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return (try? encoder.encode(self)) ?? Data("{}".utf8) // try?: non-finite numbers go as strings (above): it always encodes
    }

    public static func decode(_ data: Data) throws(ExperimentError) -> GridResults {
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do { return try decoder.decode(GridResults.self, from: data) } catch { throw ExperimentError(.stream, "the stored final results are not readable", cause: error) }
    }

    /// The file names `write(to:)` uses for this job.
    public var fileNames: (json: String, html: String) { ("grid_\(job)_results.json", "grid_\(job)_report.html") }

    /// Writes the JSON and the HTML report into `directory`; returns their paths.
    public func write(to directory: String) throws(ExperimentError) -> (json: String, html: String) {
        let json = URL(fileURLWithPath: directory).appendingPathComponent(fileNames.json)
        let html = URL(fileURLWithPath: directory).appendingPathComponent(fileNames.html)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            try encoded().write(to: json, options: .atomic)
            try Data(GridReportPage.html(self).utf8).write(to: html, options: .atomic)
        } catch {
            throw ExperimentError(.io, "writing the results of job \(job) into \(directory)", cause: error)
        }
        return (json.path, html.path)
    }
}

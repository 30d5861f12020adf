public import Regression
import ExperimentData
public import RedisClient

/// A job as a worker needs it: its whole data set and its folds.
public struct LoadedJob: Sendable {
    public var features: Matrix
    public var targets: [Double]
    public var folds: KFold

    public init(features: Matrix, targets: [Double], folds: KFold) {
        self.features = features
        self.targets = targets
        self.folds = folds
    }

    /// Reads a job's description and its whole data set (`XRANGE` in pages of 5,000 entries).
    public static func load(_ job: String, keys: PoolKeys, on redis: RedisClient) async throws(ExperimentError) -> LoadedJob {
        guard let description = try await JobStore(keys: keys).description(job: job, on: redis) else {
            throw ExperimentError(.stream, "job \(job) has no usable description (folds, seed) in \(keys.job(job))")
        }
        let data = keys.data(job)
        var set = StreamDataSet(stream: data)
        var cursor = "-"
        while true {
            let entries: [RedisStreamEntry]
            do { entries = try await redis.send(.xrange(data, start: cursor, count: 5_000)) } catch { throw .redis(error, "reading \(data) from \(cursor)") }
            for entry in entries where entry.id != cursor { try set.add(entry) }
            guard let last = entries.last, last.id != cursor else { break }
            cursor = last.id
        }
        guard set.isComplete else { throw ExperimentError(.stream, "\(data): incomplete data set (\(set.count) of \(set.header?.sampleCount ?? 0) samples)") }
        let (header, matrix, targets) = try set.assembled()
        return LoadedJob(features: matrix, targets: targets, folds: try KFold(rows: header.sampleCount, folds: description.folds, seed: description.seed))
    }
}

import Foundation
public import RedisClient

/// Writes a data set into the task stream: the header entry, then one entry per row with its
/// min-max normalised features, in pipelined batches.
public struct Dispatcher: Sendable {
    public var keys: ExperimentKeys
    /// `XADD`s per round trip.
    public var batchSize = 1_000

    public init(keys: ExperimentKeys) {
        self.keys = keys
    }

    /// Dispatches `dataset`; an existing stream is refused unless `replace` (which deletes it,
    /// its consumer groups with it). Returns the run id (the header entry's id).
    /// `progress(written, total)` is called after each batch.
    public func dispatch(_ dataset: Dataset, to redis: RedisClient, replace: Bool, progress: (Int, Int) -> Void = { _, _ in }) async throws(ExperimentError) -> String {
        do {
            let existing = try await redis.send(.exists([keys.stream]))
            if existing > 0 {
                guard replace else {
                    let length = try await redis.send(.xlen(keys.stream))
                    throw ExperimentError(.redis, "stream '\(keys.stream)' already exists (\(length) entries); pass --replace to overwrite it, or --stream to use another")
                }
                _ = try await redis.send(.del([keys.stream]))
            }
            let normalization = dataset.normalization()
            let normalized = normalization.apply(dataset.features)
            let header = StreamFormat.Header(featureNames: dataset.featureNames, targetName: dataset.targetName, sampleCount: dataset.rowCount, normalization: normalization)
            let run = try await redis.send(.xadd(keys.stream, fields: StreamFormat.headerFields(header)))
            let width = dataset.featureCount
            var row = 0
            while row < dataset.rowCount {
                let end = min(dataset.rowCount, row + batchSize)
                var pipeline = RedisPipeline(capacity: end - row)
                for r in row..<end {
                    pipeline.append(.xadd(keys.stream, fields: StreamFormat.sampleFields(taskID: r, featureValues: normalized[(r * width)..<((r + 1) * width)], target: dataset.targetTexts[r])))
                }
                for reply in try await redis.execute(pipeline) {
                    if case .error(let message) = reply { throw ExperimentError(.redis, "XADD to '\(keys.stream)' refused: \(message)") }
                }
                row = end
                progress(row, dataset.rowCount)
            }
            _ = try await redis.send(.hset(keys.run(run), [
                ("dataset", Array(dataset.name.utf8)), ("samples", Array(String(dataset.rowCount).utf8)),
                ("features", Array(String(width).utf8)), ("target", Array(dataset.targetName.utf8)),
                ("dispatched_at", Array(ISO8601DateFormatter().string(from: Date()).utf8)),
            ]))
            return run
        } catch let error as ExperimentError {
            throw error
        } catch let error as RedisError {
            throw ExperimentError(.redis, "Redis: \(error)")
        } catch {
            throw ExperimentError(.redis, "\(error)")
        }
    }
}

import Foundation
public import Regression
public import RedisClient

/// Writes a data set into a stream in the stream format (`StreamFormat`): the header entry, then
/// one entry per row with its min-max normalised features, in pipelined batches, and last a hash
/// describing the run (the header entry's id). The one writer of data sets: the pipeline's
/// dispatcher and the grid pool's job creation both use it.
public struct DataSetWriter: Sendable {
    public var stream: String
    /// `XADD`s per round trip.
    public var batchSize = 1_000

    public init(stream: String) {
        self.stream = stream
    }

    /// The hash describing run `run` of the stream: data set name, shape, when it was written.
    public func runKey(_ run: String) -> String { "\(stream):run:\(run)" }

    /// Appends `dataset` to the stream; returns the run id (the header entry's id).
    /// `progress(written, total)` is called after each batch.
    public func write(_ dataset: Dataset, to redis: RedisClient, progress: (Int, Int) -> Void = { _, _ in }) async throws(ExperimentError) -> String {
        let normalization = dataset.normalization()
        let normalized = normalization.apply(dataset.features)
        let header = StreamFormat.Header(featureNames: dataset.featureNames, targetName: dataset.targetName, sampleCount: dataset.rowCount, normalization: normalization)
        let run: String
        do { run = try await redis.send(.xadd(stream, fields: StreamFormat.headerFields(header))) } catch { throw .redis(error, "XADD of the header to '\(stream)'") }
        let width = dataset.featureCount
        var row = 0
        while row < dataset.rowCount {
            let end = min(dataset.rowCount, row + batchSize)
            var pipeline = RedisPipeline(capacity: end - row)
            for r in row..<end {
                pipeline.append(.xadd(stream, fields: StreamFormat.sampleFields(taskID: r, featureValues: normalized[(r * width)..<((r + 1) * width)], target: dataset.targetTexts[r])))
            }
            let replies: [RedisReply]
            do { replies = try await redis.execute(pipeline) } catch { throw .redis(error, "XADD of rows \(row)..<\(end) to '\(stream)'") }
            for reply in replies {
                if case .error(let message) = reply {
                    throw ExperimentError(.redis, "XADD of rows \(row)..<\(end) to '\(stream)' refused", cause: RedisError(kind: .server, message: message, command: "XADD"))
                }
            }
            row = end
            progress(row, dataset.rowCount)
        }
        do {
            _ = try await redis.send(.hset(runKey(run), [
                ("dataset", Array(dataset.name.utf8)), ("samples", Array(String(dataset.rowCount).utf8)),
                ("features", Array(String(width).utf8)), ("target", Array(dataset.targetName.utf8)),
                ("dispatched_at", Array(ISO8601DateFormatter().string(from: Date()).utf8)),
            ]))
        } catch {
            throw .redis(error, "HSET \(runKey(run))")
        }
        return run
    }
}

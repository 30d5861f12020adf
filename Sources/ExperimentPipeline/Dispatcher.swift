public import Regression
public import ExperimentData
public import RedisClient

/// The pipeline's first step: writes a data set into the experiment's task stream
/// (`DataSetWriter`), refusing to mix it into an existing stream unless asked to replace it.
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
        let stream = keys.stream
        let existing: Int
        do { existing = try await redis.send(.exists([stream])) } catch { throw .redis(error, "EXISTS \(stream)") }
        if existing > 0 {
            guard replace else {
                let length: Int
                do { length = try await redis.send(.xlen(stream)) } catch { throw .redis(error, "XLEN \(stream)") }
                throw ExperimentError(.redis, "stream '\(stream)' already exists (\(length) entries)", hint: "pass --replace to overwrite it, or --stream to use another")
            }
            do { _ = try await redis.send(.del([stream])) } catch { throw .redis(error, "deleting the stream '\(stream)' to replace it") }
        }
        var writer = DataSetWriter(stream: stream)
        writer.batchSize = batchSize
        return try await writer.write(dataset, to: redis, progress: progress)
    }
}

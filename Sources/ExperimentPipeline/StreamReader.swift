import Foundation
public import Regression
public import ExperimentData
public import RedisClient

/// Reads a whole data set from the task stream through an algorithm's own consumer group, as
/// the original workers do: `XGROUP CREATE … 0 MKSTREAM` (on BUSYGROUP the group's cursor is
/// set back to 0, so a re-run reads everything again), then `XREADGROUP` in batches with `XACK`,
/// until the header's `n_samples` rows are in.
public struct StreamReader: Sendable {
    public var keys: ExperimentKeys
    public var group: String
    public var consumer: String
    /// Entries per `XREADGROUP`.
    public var batchSize = 5_000
    /// How long one `XREADGROUP` blocks waiting for entries.
    public var block: Duration = .milliseconds(500)
    /// Give up when the stream is still incomplete after this long.
    public var timeout: Duration = .seconds(120)

    public init(keys: ExperimentKeys, group: String, consumer: String) {
        self.keys = keys
        self.group = group
        self.consumer = consumer
    }

    /// What was read: the header, its entry id (the run) and the samples ordered by task id.
    public struct Read: Sendable {
        public var run: String
        public var header: StreamFormat.Header
        public var features: Matrix
        public var targets: [Double]
    }

    /// Joins the group (creating the stream when missing, rewinding an existing group).
    public func join(_ redis: RedisClient) async throws(ExperimentError) {
        do {
            try await redis.send(.xgroupCreate(keys.stream, group: group, id: "0", makeStream: true))
        } catch where error.serverCode == .busyGroup {
            do { try await redis.send(.xgroupSetID(keys.stream, group: group, id: "0")) } catch { throw .redis(error, "XGROUP SETID \(group) on '\(keys.stream)'") }
        } catch {
            throw .redis(error, "XGROUP CREATE \(group) on '\(keys.stream)'")
        }
    }

    /// Reads until the data set is complete; `progress(read, total)` after each batch (total 0
    /// until the header is seen).
    public func read(_ redis: RedisClient, progress: (Int, Int) -> Void = { _, _ in }) async throws(ExperimentError) -> Read {
        try await join(redis)
        let deadline = ContinuousClock.now + timeout
        var data = StreamDataSet(stream: keys.stream)
        while !data.isComplete {
            if ContinuousClock.now > deadline {
                let have = data.header.map { "\(data.count) of \($0.sampleCount) samples" } ?? "no header yet"
                throw ExperimentError(.timeout, "stream '\(keys.stream)' still incomplete after \(timeout) (\(have))", hint: "is the dispatcher running, and is it the right --stream?")
            }
            let entries: [RedisStreamEntry]
            do {
                entries = try await redis.send(.xreadgroup(group: group, consumer: consumer, stream: keys.stream, count: batchSize, block: block))
            } catch where error.serverCode == .noGroup || error.serverCode == .unblocked {
                // The stream was replaced (a new dispatch; Redis 7 wakes a blocked read with
                // UNBLOCKED when the key goes): start over on the new one.
                try await join(redis)
                data = StreamDataSet(stream: keys.stream)
                continue
            } catch {
                throw .redis(error, "XREADGROUP on '\(keys.stream)'")
            }
            if entries.isEmpty { continue }
            for entry in entries { try data.add(entry) }
            do {
                _ = try await redis.send(.xack(keys.stream, group: group, ids: entries.map(\.id)))
            } catch {
                throw .redis(error, "XACK on '\(keys.stream)'")
            }
            progress(data.count, data.header?.sampleCount ?? 0)
        }
        let (h, features, targets) = try data.assembled()
        return Read(run: data.run, header: h, features: features, targets: targets)
    }
}

import Foundation
public import Regression
public import RedisClient
import ExperimentData

/// Reads a `PoolSnapshot`: the registry by SCAN + MGET, jobs from the job index and counters.
public struct PoolStatusReader: Sendable {
    public var keys: PoolKeys

    public init(keys: PoolKeys) {
        self.keys = keys
    }

    /// The pool now; with `job`, only that job (none when it does not exist).
    public func snapshot(job: String?, limit: Int = 20, on redis: RedisClient) async throws(ExperimentError) -> PoolSnapshot {
        let store = JobStore(keys: keys)
        let names: [String]
        do { names = try await redis.keys(matching: keys.workerPattern) } catch { throw .redis(error, "listing workers") }
        var workers: [PoolSnapshot.WorkerInfo] = []
        if !names.isEmpty {
            let values: [[UInt8]?]
            do { values = try await redis.send(.mget(names)) } catch { throw .redis(error, "reading the registry") }
            // An entry that expired between SCAN and MGET is gone; one that cannot be read is
            // shown by name, so `status` still counts the worker.
            workers = zip(names, values).compactMap { name, value -> PoolSnapshot.WorkerInfo? in
                guard let value else { return nil }
                do throws(ExperimentError) { return try PoolJSON.decode(PoolSnapshot.WorkerInfo.self, from: value, "registry entry \(name)") } catch {
                    return PoolSnapshot.WorkerInfo(name: String(name.dropFirst(keys.worker("").count)), host: "?", pid: 0, started: "?", currentTask: "(unreadable entry: \(error.message))", tasksDone: 0, meanTaskSeconds: 0)
                }
            }.sorted { $0.name < $1.name }
        }
        let ids: [String]
        if let job { ids = [job] } else { ids = try await store.jobIDs(limit: limit, on: redis) }
        var jobs: [PoolSnapshot.JobSummary] = []
        for id in ids {
            guard let description = try await store.description(job: id, on: redis) else { continue }
            let finalised: Int
            do { finalised = try await redis.send(.exists([keys.final(id)])) } catch { throw .redis(error, "reading job \(id)") }
            jobs.append(.init(id: id, dataset: description.dataset, priority: description.priority.rawValue, created: description.created,
                              counts: try await store.counts(job: id, on: redis), finalised: finalised == 1))
        }
        return PoolSnapshot(pool: keys.prefix, workers: workers, jobs: jobs)
    }
}

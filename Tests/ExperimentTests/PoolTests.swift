import Foundation
import RedisClient
import Synchronization
import Testing
import TestSupport
@testable import Experiment

/// The worker pool's core against a real redis-server (groundwork of issue 11): a job's tasks go
/// to competing workers, each done exactly once, high-priority jobs first.
@Suite struct PoolTests {
    static let grid = #"{"lr": {}, "rf": {"n_estimators": [10], "max_depth": [2, 4]}}"#

    @Test func twoWorkersShareAJobAndEveryTaskIsDoneOnce() async throws {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = PoolKeys(prefix: uniqueName("pool"))
        let data = try Dataset.load(csv: Fixtures.path("friedman_small.csv"), target: "target")
        let store = JobStore(keys: keys)
        let job = try await store.create(data, grid: try GridSpec.parse(Array(Self.grid.utf8), path: "grid.json"), folds: 3, seed: 42, priority: .normal, on: redis)
        #expect(job.taskCount == 9)
        let done = StopFlag()
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for name in ["w1", "w2"] {
                group.addTask {
                    let own = try await RedisClient.connect(configuration: server.configuration)
                    let reader = try await RedisClient.connect(configuration: server.configuration)
                    let finished = try await PoolWorker(keys: keys, name: name).run(redis: own, reader: reader) { done.isSet }
                    await own.close()
                    await reader.close()
                    return finished
                }
            }
            try await waitUntil("every task done", timeout: .seconds(60)) {
                try await store.states(job: job.id, on: redis).values.allSatisfy { $0.state == .done }
            }
            done.set()
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(counts.reduce(0, +) == 9, "nine tasks, each finished once: \(counts)")
        let states = try await store.states(job: job.id, on: redis)
        #expect(states.count == 9 && states.values.allSatisfy { $0.attempts == 1 })
        let results = try await redis.send(.hgetall(keys.results(job.id)))
        #expect(results.count == 9)
        let folds = Set(results.values.compactMap { try? JSONDecoder().decode(PoolWorker.TaskResult.self, from: Data($0)) }.map { "\($0.algorithm)-\($0.parameterSet)-\($0.fold)" })
        #expect(folds.count == 9)
        await redis.close()
        server.stop()
    }

    @Test func highPriorityTasksAreTakenFirst() async throws {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = PoolKeys(prefix: uniqueName("pool"))
        let data = try Dataset.load(csv: Fixtures.path("friedman_small.csv"), target: "target")
        let grid = try GridSpec.parse(Array(#"{"lr": {}}"#.utf8), path: "grid.json")
        let store = JobStore(keys: keys)
        let normal = try await store.create(data, grid: grid, folds: 3, seed: 1, priority: .normal, on: redis)
        let high = try await store.create(data, grid: grid, folds: 3, seed: 1, priority: .high, on: redis)
        let worker = PoolWorker(keys: keys, name: "solo")
        var order: [String] = []
        for _ in 0..<6 {
            guard let (_, entry) = try await worker.next(redis) else { break }
            order.append(String(decoding: entry["job"] ?? [], as: UTF8.self))
        }
        #expect(order == [high.id, high.id, high.id, normal.id, normal.id, normal.id])
        await redis.close()
        server.stop()
    }
}

/// A flag tests raise to stop background loops.
final class StopFlag: Sendable {
    private let value = Mutex(false)
    var isSet: Bool { value.withLock { $0 } }
    func set() { value.withLock { $0 = true } }
}

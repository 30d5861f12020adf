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

    /// Runs one pool worker until `done` holds.
    static func runWorker(_ worker: PoolWorker, server: RedisServer, until done: @escaping @Sendable () async throws -> Bool) async throws -> Int {
        let own = try await RedisClient.connect(configuration: server.configuration)
        let reader = try await RedisClient.connect(configuration: server.configuration)
        let stop = StopFlag()
        let watcher = Task {
            while !(try await done()) { try await Task.sleep(for: .milliseconds(20)) }
            stop.set()
        }
        let finished = try await worker.run(redis: own, reader: reader) { stop.isSet }
        watcher.cancel()
        await own.close()
        await reader.close()
        return finished
    }

    @Test func aDeadWorkersTaskIsReclaimedAndATaskThatAlwaysThrowsFailsAfterThreeAttempts() async throws {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = PoolKeys(prefix: uniqueName("pool"))
        let data = try Dataset.load(csv: Fixtures.path("friedman_small.csv"), target: "target")
        let store = JobStore(keys: keys)
        let job = try await store.create(data, grid: try GridSpec.parse(Array(#"{"lr": {}}"#.utf8), path: "grid.json"), folds: 3, seed: 42, priority: .normal, on: redis)
        // A task that can never succeed (its fold does not exist).
        let broken = GridTask(id: "lr-0-99", algorithm: "lr", parameters: [:], parameterSet: 0, fold: 99)
        _ = try await redis.send(.hset(keys.taskStates(job.id), [(broken.id, JobStore.json(TaskRecord()))]))
        _ = try await redis.send(.xadd(keys.tasks(.normal), fields: [RedisStreamField("job", job.id), RedisStreamField("task", JobStore.json(broken))]))
        // A worker takes a task and dies before finishing it (no heartbeat: it never registered).
        let dead = PoolWorker(keys: keys, name: "dead")
        let (_, taken) = try #require(try await dead.next(redis))
        let takenTask = try JSONDecoder().decode(GridTask.self, from: Data(try #require(taken["task"])))
        _ = try await store.update(job: job.id, task: takenTask.id, on: redis) { $0.start($1, worker: "dead", now: 0) }

        var live = PoolWorker(keys: keys, name: "live")
        live.idleTimeout = .milliseconds(300)
        _ = try await Self.runWorker(live, server: server) {
            let states = try await store.states(job: job.id, on: redis)
            return states.values.allSatisfy { $0.state == .done || $0.state == .failed }
        }
        let states = try await store.states(job: job.id, on: redis)
        #expect(states[takenTask.id]?.state == .done && states[takenTask.id]?.attempts == 2 && states[takenTask.id]?.worker == "live", "reclaimed from the dead worker")
        #expect(states[broken.id]?.state == .failed && states[broken.id]?.attempts == 3)
        #expect(states[broken.id]?.lastError?.contains("fold 99") == true)
        #expect(states.values.filter { $0.state == .done }.count == 3, "the job went on")
        #expect(try await redis.send(.exists([keys.worker("live")])) == 0, "deregistered when it stopped")
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

import Foundation
import RedisClient
import Synchronization
import Testing
import TestSupport
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool

/// A pool on a fresh test Redis: its keys, a client and the job store.
struct PoolSetup {
    let server: RedisServer
    let redis: RedisClient
    let keys = PoolKeys(prefix: uniqueName("pool"))
    var store: JobStore { JobStore(keys: keys) }

    init() async throws {
        server = try await RedisServer()
        redis = try await RedisClient.connect(configuration: server.configuration)
    }

    /// A job of `grid` on the small friedman fixture.
    func job(_ grid: String, folds: Int = 3, seed: UInt64 = 42, priority: JobPriority = .normal) async throws -> JobDescription {
        let data = try Dataset.load(csv: Fixtures.path("friedman_small.csv"), target: "target")
        return try await store.create(data, grid: try GridSpec.parse(Array(grid.utf8), path: "grid.json"), folds: folds, seed: seed, priority: priority, on: redis)
    }

    func close() async {
        await redis.close()
        server.stop()
    }
}

/// The worker pool's core against a real redis-server (groundwork of issue 11): a job's tasks go
/// to competing workers, each done exactly once, high-priority jobs first.
@Suite struct PoolTests {
    static let grid = #"{"lr": {}, "rf": {"n_estimators": [10], "max_depth": [2, 4]}}"#

    @Test func twoWorkersShareAJobAndEveryTaskIsDoneOnce() async throws {
        let pool = try await PoolSetup()
        let (server, redis, keys, store) = (pool.server, pool.redis, pool.keys, pool.store)
        let job = try await pool.job(Self.grid, folds: 3, seed: 42)
        #expect(job.taskCount == 9)
        let done = PoolStop()
        let counts = try await withThrowingTaskGroup(of: Int.self) { group in
            for name in ["w1", "w2"] {
                group.addTask {
                    let own = try await RedisClient.connect(configuration: server.configuration)
                    let reader = try await RedisClient.connect(configuration: server.configuration)
                    let finished = try await PoolWorker(keys: keys, name: name).run(redis: own, reader: reader, stop: done)
                    await own.close()
                    await reader.close()
                    return finished
                }
            }
            try await waitUntil("every task done", timeout: .seconds(60)) {
                try await store.states(job: job.id, on: redis).values.allSatisfy { $0.state == .done }
            }
            done.request()
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(counts.reduce(0, +) == 9, "nine tasks, each finished once: \(counts)")
        #expect(try await redis.send(.xlen(keys.tasks(.normal))) == 0, "finished tasks leave the stream")
        let states = try await store.states(job: job.id, on: redis)
        #expect(states.count == 9 && states.values.allSatisfy { $0.attempts == 1 })
        let results = try await redis.send(.hgetall(keys.results(job.id)))
        #expect(results.count == 9)
        let folds = Set(try results.values.map { try PoolJSON.decode(TaskResult.self, from: $0, "a result") }.map { "\($0.algorithm)-\($0.parameterSet)-\($0.fold)" })
        #expect(folds.count == 9)
        await pool.close()
    }

    /// Runs one pool worker until `done` holds (throws when it does not within `timeout`; the
    /// worker is stopped either way).
    static func runWorker(_ worker: PoolWorker, server: RedisServer, timeout: Duration = .seconds(60), until done: @escaping @Sendable () async throws -> Bool) async throws -> Int {
        let own = try await RedisClient.connect(configuration: server.configuration)
        let reader = try await RedisClient.connect(configuration: server.configuration)
        let stop = PoolStop()
        let watcher = Task {
            defer { stop.request() }
            try await waitUntil("the worker's goal", timeout: timeout, every: .milliseconds(20), done)
        }
        let finished = try await worker.run(redis: own, reader: reader, stop: stop)
        await own.close()
        await reader.close()
        try await watcher.value
        return finished
    }

    /// Runs `worker` on clients of its own, asks it to stop once it runs a task of `job`, and
    /// returns how many tasks it finished.
    static func stopWhileRunning(_ worker: PoolWorker, job: String, pool: PoolSetup) async throws -> Int {
        let stop = PoolStop()
        let own = try await RedisClient.connect(configuration: pool.server.configuration)
        let reader = try await RedisClient.connect(configuration: pool.server.configuration)
        let running = Task { try await worker.run(redis: own, reader: reader, stop: stop) }
        try await waitUntil("a task runs", timeout: .seconds(30)) {
            try await pool.store.counts(job: job, on: pool.redis).running == 1
        }
        stop.request()
        let finished = try await withDeadline(.seconds(120)) { try await running.value }
        await own.close()
        await reader.close()
        return finished
    }

    @Test func aDeadWorkersTaskIsReclaimedAndATaskThatAlwaysThrowsFailsAfterThreeAttempts() async throws {
        let pool = try await PoolSetup()
        let (server, redis, keys, store) = (pool.server, pool.redis, pool.keys, pool.store)
        let job = try await pool.job(#"{"lr": {}}"#, folds: 3, seed: 42)
        // A task that can never succeed (its fold does not exist).
        let broken = GridTask(id: "lr-0-99", algorithm: "lr", parameters: [:], parameterSet: 0, fold: 99)
        _ = try await redis.send(.hset(keys.taskStates(job.id), [(broken.id, try PoolJSON.encode(TaskRecord(), "test value"))]))
        _ = try await redis.send(.raw(["HINCRBY", keys.job(job.id), "tasks", "1"]))
        _ = try await redis.send(.raw(["HINCRBY", keys.job(job.id), "queued", "1"]))
        _ = try await redis.send(.xadd(keys.tasks(.normal), fields: [RedisStreamField("job", job.id), RedisStreamField("task", try PoolJSON.encode(broken, "test value"))]))
        // A worker takes a task and dies before finishing it (no heartbeat: it never registered).
        let dead = PoolWorker(keys: keys, name: "dead")
        let taken = try #require(try await dead.deliveries.next(redis, on: redis))
        let takenTask = taken.task
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
        let counts = try await store.counts(job: job.id, on: redis)
        #expect(counts.tasks == 4 && counts.done == 3 && counts.failed == 1 && counts.queued == 0 && counts.running == 0 && counts.isFinished, "\(counts)")
        #expect(try await redis.send(.exists([keys.worker("live")])) == 0, "deregistered when it stopped")
        await pool.close()
    }

    /// A Redis crash with `appendfsync everysec` can keep a task's start and lose its end: the
    /// state says `running` by a worker that is alive but long past it. Liveness alone would
    /// leave that task to it forever; the registry's current task tells the two apart.
    @Test func aTaskItsLiveWorkerLostTrackOfIsReclaimedWhileALongOneIsLeftToItsWorker() async throws {
        let pool = try await PoolSetup()
        let (server, redis, keys, store) = (pool.server, pool.redis, pool.keys, pool.store)
        let job = try await pool.job(#"{"lr": {}}"#, folds: 3, seed: 42)
        func take(as worker: String, onIt: Bool) async throws -> GridTask {
            let delivery = try #require(try await PoolWorker(keys: keys, name: worker).deliveries.next(redis, on: redis))
            _ = try await store.update(job: job.id, task: delivery.task.id, on: redis) { $0.start($1, worker: worker, now: 0) }
            let info = PoolSnapshot.WorkerInfo(name: worker, host: "h", pid: 1, started: "s", currentTask: onIt ? WorkerStatus.label(job.id, delivery.task.id) : nil, tasksDone: 0, meanTaskSeconds: 0)
            _ = try await redis.send(.set(keys.worker(worker), try PoolJSON.encode(info, "test value"), expiry: .seconds(600)))
            return delivery.task
        }
        // Alive (its entry is fresh) but on no task: it lost the first one.
        let lost = try await take(as: "amnesiac", onIt: false)
        // Alive and on its task: a long one.
        let long = try await take(as: "busy", onIt: true)

        var live = PoolWorker(keys: keys, name: "live")
        live.idleTimeout = .milliseconds(300)
        let stream = keys.tasks(.normal), group = keys.group
        _ = try await Self.runWorker(live, server: server) {
            let states = try await store.states(job: job.id, on: redis)
            // Done once the lost task and the free one are finished and the long one's delivery
            // went through a reclaim pass: XAUTOCLAIM delivered it to `live` (its delivery count
            // went up), which handed it back to `busy`.
            let pending = try await redis.send(.raw(["XPENDING", stream, group, "-", "+", "10"]))
            guard case .array(let entries) = pending else { return false }
            let longSeen = entries.contains { entry in
                guard case .array(let fields) = entry, fields.count >= 4, case .integer(let deliveries) = fields[3] else { return false }
                return fields[1].string == "busy" && deliveries >= 2
            }
            return longSeen && states.values.filter { $0.state == .done }.count == 2
        }
        let states = try await store.states(job: job.id, on: redis)
        #expect(states[lost.id]?.state == .done && states[lost.id]?.worker == "live", "taken over: \(String(describing: states[lost.id]))")
        #expect(states[long.id]?.state == .running && states[long.id]?.worker == "busy" && states[long.id]?.attempts == 1, "left to its worker: \(String(describing: states[long.id]))")
        await pool.close()
    }

    @Test func highPriorityTasksAreTakenFirst() async throws {
        let pool = try await PoolSetup()
        let (redis, keys) = (pool.redis, pool.keys)
        let normal = try await pool.job(#"{"lr": {}}"#, seed: 1)
        let high = try await pool.job(#"{"lr": {}}"#, seed: 1, priority: .high)
        let worker = PoolWorker(keys: keys, name: "solo")
        var order: [String] = []
        for _ in 0..<6 {
            guard let delivery = try await worker.deliveries.next(redis, on: redis) else { break }
            order.append(delivery.job)
        }
        #expect(order == [high.id, high.id, high.id, normal.id, normal.id, normal.id])
        await pool.close()
    }

    @Test func countersAndEventsFollowTheTasksAndTheJobFinishesOnce() async throws {
        let pool = try await PoolSetup()
        let (server, redis, keys, store) = (pool.server, pool.redis, pool.keys, pool.store)
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: server.configuration)
        try await subscriber.subscribe([keys.events])
        let job = try await pool.job(Self.grid)
        var counts = try await store.counts(job: job.id, on: redis)
        #expect(counts.tasks == 9 && counts.queued == 9 && !counts.isFinished)
        #expect(try await store.jobIDs(on: redis) == [job.id])
        let marker = Array(uniqueName("marker").utf8)
        // Every event up to a marker the test publishes once the workers stopped: their
        // PUBLISHes were answered by then, so Redis sent their messages before the marker.
        let collected = Task {
            var seen: [PoolEvent] = []
            for await event in events {
                guard case .message(let message) = event else { continue }
                if message.payload == marker { break }
                seen.append(try PoolJSON.decode(PoolEvent.self, from: message.payload, "a pool event")) // only the pool writes here
            }
            return seen
        }
        _ = try await withThrowingTaskGroup(of: Int.self) { group in
            for name in ["e1", "e2"] {
                group.addTask {
                    try await Self.runWorker(PoolWorker(keys: keys, name: name), server: server) {
                        try await store.counts(job: job.id, on: redis).isFinished
                    }
                }
            }
            return try await group.reduce(0, +)
        }
        _ = try await redis.send(.publish(keys.events, marker))
        let seen = try await withDeadline(.seconds(20)) { try await collected.value }
        #expect(seen.filter(\.isCompletion) == [.finished(job.id, { var c = JobCounts(); c.tasks = 9; c.done = 9; return c }())], "one completion event")
        let doneEvents = seen.compactMap { $0.task(in: .done) }
        #expect(doneEvents.count == 9 && Set(doneEvents).count == 9, "each task announced done once: \(doneEvents)")
        let startEvents = seen.compactMap { $0.task(in: .running) }
        #expect(startEvents.count == 9 && Set(startEvents).count == 9, "each task announced started once: \(startEvents)")
        counts = try await store.counts(job: job.id, on: redis)
        #expect(counts.done == 9 && counts.queued == 0 && counts.running == 0)
        await subscriber.close()
        await pool.close()
    }

    @Test func aStopHandsTheRunningTaskBackAfterTheGrace() async throws {
        let pool = try await PoolSetup()
        let (redis, keys, store) = (pool.redis, pool.keys, pool.store)
        // One slow task: a large forest on one thread.
        let job = try await pool.job(#"{"rf": {"n_estimators": [1500], "n_jobs": [1]}}"#, folds: 2, seed: 1)
        var worker = PoolWorker(keys: keys, name: "leaving")
        worker.stopGrace = .milliseconds(100)
        let finished = try await Self.stopWhileRunning(worker, job: job.id, pool: pool)
        #expect(finished == 0)
        let states = try await store.states(job: job.id, on: redis)
        #expect(states.values.allSatisfy { $0.state == .queued && $0.attempts == 0 && $0.worker == nil }, "handed back, attempt not counted: \(states)")
        let counts = try await store.counts(job: job.id, on: redis)
        #expect(counts.queued == 2 && counts.running == 0)
        let pending = try await redis.send(.raw(["XPENDING", keys.tasks(.normal), keys.group]))
        guard case .array(let summary) = pending else { Issue.record("XPENDING answered \(pending)"); return }
        #expect(summary.first == .integer(0), "nothing left pending: \(pending)")
        #expect(try await redis.send(.xlen(keys.tasks(.normal))) == 2, "the handed-back task is queued again, its delivery gone")
        #expect(try await redis.send(.exists([keys.worker("leaving")])) == 0, "deregistered")
        await pool.close()
    }

    @Test func aStopLetsTheRunningTaskFinishWithinTheGraceAndTakesNoOther() async throws {
        let pool = try await PoolSetup()
        let (redis, keys, store) = (pool.redis, pool.keys, pool.store)
        let job = try await pool.job(#"{"rf": {"n_estimators": [1500], "n_jobs": [1]}}"#, folds: 2, seed: 1)
        var worker = PoolWorker(keys: keys, name: "finishing")
        worker.stopGrace = .seconds(120) // ample: the task ends well within it
        let finished = try await Self.stopWhileRunning(worker, job: job.id, pool: pool)
        #expect(finished == 1, "the running task finished")
        let states = try await store.states(job: job.id, on: redis)
        #expect(states.values.filter { $0.state == .done && $0.attempts == 1 && $0.worker == "finishing" }.count == 1, "\(states)")
        #expect(states.values.filter { $0.state == .queued && $0.attempts == 0 }.count == 1, "no other task taken after the stop: \(states)")
        #expect(try await redis.send(.hgetall(keys.results(job.id))).count == 1)
        let pending = try await redis.send(.raw(["XPENDING", keys.tasks(.normal), keys.group]))
        guard case .array(let summary) = pending else { Issue.record("XPENDING answered \(pending)"); return }
        #expect(summary.first == .integer(0), "nothing left pending: \(pending)")
        #expect(try await redis.send(.exists([keys.worker("finishing")])) == 0, "deregistered after finishing")
        await pool.close()
    }

    @Test func aLeaseLockIsReleasedAndExtendedOnlyByItsOwner() async throws {
        let pool = try await PoolSetup()
        let redis = pool.redis
        let key = uniqueName("lock")
        // Leases long enough that a busy machine's pauses do not matter.
        let mine = LeaseLock(key: key, lease: .seconds(60)), theirs = LeaseLock(key: key, lease: .seconds(60))
        #expect(try await mine.acquire(on: redis))
        let held = try await theirs.acquire(on: redis)
        #expect(!held, "held")
        let (released, extended) = (try await theirs.release(on: redis), try await theirs.extend(on: redis))
        #expect(!released && !extended, "not theirs to release or extend")
        // As if most of the lease had passed: the owner's extension renews it to a full lease.
        _ = try await redis.send(.raw(["PEXPIRE", key, "30000"]))
        #expect(try await mine.extend(on: redis))
        let left = try await redis.send(.raw(["PTTL", key]))
        guard case .integer(let milliseconds) = left else { Issue.record("PTTL answered \(left)"); return }
        #expect(milliseconds > 30_000, "extended to a full lease again: \(milliseconds) ms left")
        #expect(try await redis.send(.get(key)) == Array(mine.token.utf8))
        #expect(try await mine.release(on: redis))
        #expect(try await theirs.acquire(on: redis), "free once released")
        #expect(try await theirs.release(on: redis))
        // A lease nobody extends runs out, and then there is nothing to release.
        let short = LeaseLock(key: key, lease: .milliseconds(200))
        #expect(try await short.acquire(on: redis))
        try await waitUntil("the lease runs out", timeout: .seconds(10)) { try await redis.send(.exists([key])) == 0 }
        let releasedLate = try await short.release(on: redis)
        #expect(!releasedLate, "expired: nothing to release")
        await pool.close()
    }

    @Test func racingFinalisersWriteOnce() async throws {
        let pool = try await PoolSetup()
        let (server, redis, keys, store) = (pool.server, pool.redis, pool.keys, pool.store)
        let job = try await pool.job(Self.grid, folds: 3, seed: 42)
        _ = try await Self.runWorker(PoolWorker(keys: keys, name: "solo"), server: server) { try await store.counts(job: job.id, on: redis).isFinished }
        let writes = Counter(), waits = Counter()
        // The lock is held when the finalisers arrive, so they all wait and then race for it.
        let blocker = LeaseLock(key: keys.finaliserLock(job.id), lease: .seconds(30))
        #expect(try await blocker.acquire(on: redis))
        let release = Task {
            try await waitUntil("the four finalisers wait for the lock", timeout: .seconds(30)) { waits.value == 4 }
            try await blocker.release(on: redis)
        }
        let outcomes = try await withThrowingTaskGroup(of: Finaliser.Outcome.self) { group in
            for name in ["f1", "f2", "f3", "f4"] {
                group.addTask {
                    let own = try await RedisClient.connect(configuration: server.configuration)
                    defer { Task { await own.close() } }
                    var finaliser = Finaliser(keys: keys, name: name)
                    finaliser.onWait = { waits.add() }
                    return try await finaliser.finalise(job: job.id, on: own) { _ throws(ExperimentError) in
                        writes.add()
                    }
                }
            }
            return try await group.reduce(into: [Finaliser.Outcome]()) { $0.append($1) }
        }
        try await release.value
        #expect(writes.value == 1, "one finaliser wrote")
        let written = outcomes.compactMap { if case .written(let r) = $0 { return r } else { return nil } }
        let existing = outcomes.compactMap { if case .existing(let r) = $0 { return r } else { return nil } }
        #expect(written.count == 1 && existing.count == 3 && existing.allSatisfy { $0 == written[0] })
        #expect(written.first?.ranking.count == 3 && written.first?.done == 9)
        #expect(try await redis.send(.exists([keys.finaliserLock(job.id)])) == 0, "the lock was released")
        await pool.close()
    }

    /// A high-priority job created while a worker is busy with a normal one: the worker's next
    /// task is the high job's, all of them go before the normal job's next one, and the normal
    /// job then finishes.
    @Test func aHighPriorityJobArrivingMidJobGoesFirstAndTheNormalJobStillFinishes() async throws {
        let pool = try await PoolSetup()
        let (server, redis, keys, store) = (pool.server, pool.redis, pool.keys, pool.store)
        let normal = try await pool.job(#"{"rf": {"n_estimators": [20, 30, 40], "max_depth": [3, 5], "n_jobs": [1]}}"#, folds: 5, seed: 2)
        #expect(normal.taskCount == 30)
        let created = Mutex<(job: JobDescription, at: Double)?>(nil)
        _ = try await Self.runWorker(PoolWorker(keys: keys, name: "solo"), server: server, timeout: .seconds(120)) {
            if created.withLock({ $0 }) == nil, try await store.counts(job: normal.id, on: redis).done >= 2 {
                let high = try await pool.job(#"{"lr": {}}"#, folds: 4, seed: 2, priority: .high)
                created.withLock { $0 = (high, Date().timeIntervalSince1970) } // the high job exists by now
            }
            guard let high = created.withLock({ $0?.job }) else { return false }
            let (a, b) = (try await store.counts(job: normal.id, on: redis), try await store.counts(job: high.id, on: redis))
            return a.isFinished && b.isFinished
        }
        let (high, at) = try #require(created.withLock { $0 })
        let highStates = try await store.states(job: high.id, on: redis).values
        let normalStates = try await store.states(job: normal.id, on: redis).values
        #expect(highStates.count == 4 && highStates.allSatisfy { $0.state == .done })
        #expect(normalStates.count == 30 && normalStates.allSatisfy { $0.state == .done }, "the normal job finished")
        let highStarts = highStates.compactMap(\.startedAt), highEnd = highStates.compactMap(\.finishedAt).max() ?? 0
        // Normal tasks started once the high job existed: at most one (read from the normal
        // stream just before the high tasks were queued) before the high tasks were all done.
        let normalAfter = normalStates.compactMap(\.startedAt).filter { $0 > at }.sorted()
        #expect(normalAfter.count >= 20, "most of the normal job was still to run: \(normalAfter.count)")
        #expect(normalAfter.filter { $0 < highEnd }.count <= 1, "no normal task started between the high job's tasks")
        #expect(highStarts.count == 4 && highStarts.allSatisfy { $0 < (normalAfter.dropFirst().first ?? .infinity) })
        await pool.close()
    }

    /// A command Redis refuses inside the creating transaction (here: the job index is of the
    /// wrong type) leaves nothing of the job behind: no description, no task, no queued entry,
    /// no data stream.
    @Test func aJobRedisRefusesHalfWayLeavesNothingBehind() async throws {
        let pool = try await PoolSetup()
        let (redis, keys) = (pool.redis, pool.keys)
        _ = try await redis.send(.set(keys.jobs, Array("not a sorted set".utf8)))
        do {
            _ = try await pool.job(Self.grid)
            Issue.record("created although Redis refused a command")
        } catch {
            #expect(((error as? ExperimentError)?.cause as? RedisError)?.serverCode == .wrongType, "the refused command's reply, kept: \(error)")
        }
        let left = try await redis.send(.scan(cursor: 0, match: keys.prefix + ":job:*", count: 1000)).keys
        #expect(left.isEmpty, "nothing of the job kept: \(left)")
        #expect(try await redis.send(.xlen(keys.tasks(.normal))) == 0, "no task queued")
        await pool.close()
    }

    /// `grid --max-attempts`: the job's own limit, kept with the job, decides when a task fails.
    @Test func aJobsOwnAttemptLimitDecidesWhenATaskFails() async throws {
        let pool = try await PoolSetup()
        let (server, redis, keys, store) = (pool.server, pool.redis, pool.keys, pool.store)
        let data = try Dataset.load(csv: Fixtures.path("friedman_small.csv"), target: "target")
        let job = try await store.create(data, grid: try GridSpec.parse(Array(#"{"lr": {}}"#.utf8), path: "g"), folds: 2, seed: 1, priority: .normal, maxAttempts: 5, on: redis)
        #expect(try await store.description(job: job.id, on: redis)?.maxAttempts == 5)
        let broken = GridTask(id: "lr-0-99", algorithm: "lr", parameters: [:], parameterSet: 0, fold: 99)
        _ = try await redis.send(.hset(keys.taskStates(job.id), [(broken.id, try PoolJSON.encode(TaskRecord(), "test value"))]))
        _ = try await redis.send(.raw(["HINCRBY", keys.job(job.id), "tasks", "1"]))
        _ = try await redis.send(.raw(["HINCRBY", keys.job(job.id), "queued", "1"]))
        _ = try await redis.send(.xadd(keys.tasks(.normal), fields: [RedisStreamField("job", job.id), RedisStreamField("task", try PoolJSON.encode(broken, "test value"))]))
        _ = try await Self.runWorker(PoolWorker(keys: keys, name: "w"), server: server) { try await store.counts(job: job.id, on: redis).isFinished }
        let record = try #require(try await store.record(job: job.id, task: broken.id, on: redis))
        #expect(record.state == .failed && record.attempts == 5, "\(record)")
        do {
            _ = try await store.create(data, grid: try GridSpec.parse(Array(#"{"lr": {}}"#.utf8), path: "g"), folds: 2, seed: 1, priority: .normal, maxAttempts: 0, on: redis)
            Issue.record("a job with no attempts was created")
        } catch {
            #expect(error.message.contains("--max-attempts"))
        }
        await pool.close()
    }

    /// `status` and `results --wait` wake on their job's events and ignore other jobs'.
    @Test func anEventWatchWakesOnItsJobsEventsOnly() async throws {
        let pool = try await PoolSetup()
        let (server, redis, keys) = (pool.server, pool.redis, pool.keys)
        let watch = PoolEventWatch(configuration: server.configuration, keys: keys, job: "j1")
        let completion = PoolEventWatch(configuration: server.configuration, keys: keys, job: "j1", wake: .completion)
        let mine = try PoolJSON.encode(PoolEvent.finished("j1", JobCounts()), "an event"), theirs = try PoolJSON.encode(PoolEvent.finished("j2", JobCounts()), "an event")
        var record = TaskRecord()
        record.state = .running
        let myTask = try PoolJSON.encode(PoolEvent.task("j1", "lr-0-0", record, worker: "w"), "test value")
        // Until the watch has subscribed, events are lost: publish until one wakes it.
        let publisher = Task {
            while !Task.isCancelled {
                _ = try await redis.send(.publish(keys.events, mine))
                try await Task.sleep(for: .milliseconds(50))
            }
        }
        try await withDeadline(.seconds(30), "an event of the job wakes the watch") { await watch.wait(atMost: .seconds(600)) }
        try await withDeadline(.seconds(30), "the job's completion wakes the completion watch") { await completion.wait(atMost: .seconds(600)) }
        publisher.cancel()
        _ = await publisher.result
        // Then, in order: three events of another job, a task event and the completion of the
        // watched job, an end marker.
        let end = try PoolJSON.encode(PoolEvent.finished("end", JobCounts()), "an event")
        for event in [theirs, theirs, theirs, myTask, mine, end] { _ = try await redis.send(.publish(keys.events, event)) }
        try await waitUntil("the end marker is read", timeout: .seconds(10)) { watch.recent.last?.job == "end" && completion.recent.last?.job == "end" }
        let last = watch.recent.suffix(6), lastCompletion = completion.recent.suffix(6)
        #expect(last.map(\.job) == ["j2", "j2", "j2", "j1", "j1", "end"] && last.map(\.woke) == [false, false, false, true, true, false], "\(last)")
        #expect(lastCompletion.map(\.woke) == [false, false, false, false, true, false], "only the job's completion: \(lastCompletion)")
        await completion.close()
        try await withDeadline(.seconds(30), "a pending event ends the next wait at once") { await watch.wait(atMost: .seconds(600)) }
        await watch.close()
        await pool.close()
    }

    /// The finaliser's lease is extended while it works: files that take longer than the lease to
    /// write never let another finaliser in, and the lock is released at the end.
    @Test func theFinalisersLeaseIsExtendedWhileItWorks() async throws {
        let pool = try await PoolSetup()
        let (server, redis, keys, store) = (pool.server, pool.redis, pool.keys, pool.store)
        let job = try await pool.job(#"{"lr": {}}"#, folds: 2, seed: 5)
        _ = try await Self.runWorker(PoolWorker(keys: keys, name: "solo"), server: server) { try await store.counts(job: job.id, on: redis).isFinished }
        var slow = Finaliser(keys: keys, name: "slow")
        slow.lease = .seconds(4) // renewed every 1.33 s: room for a busy machine's late renewal
        let writing = Counter(), release = Counter(), lockKey = keys.finaliserLock(job.id)
        let finalising = Task {
            try await slow.finalise(job: job.id, on: redis) { _ throws(ExperimentError) in
                writing.add()
                // Files that take as long as the test says (on the finaliser's own thread).
                let until = Date().addingTimeInterval(120)
                while release.value == 0, Date() < until { Thread.sleep(forTimeInterval: 0.01) }
            }
        }
        try await waitUntil("the slow finaliser writes its files", timeout: .seconds(30), every: .milliseconds(10)) { writing.value == 1 }
        // Counted by renewals, not by the clock: the lock's remaining lease (PTTL) only falls
        // between renewals, so each rise is one. Four renewals a third of a lease apart outlast
        // the lease itself (without them the lock would be free): the lock stays its own
        // throughout, and another finaliser cannot take it.
        let rival = LeaseLock(key: lockKey, lease: .seconds(30))
        let seen = try await withDeadline(.seconds(120), "the lease is renewed four times") { () async throws -> (holders: Set<[UInt8]?>, rivalGotIt: Bool, renewals: Int) in
            var holders: Set<[UInt8]?> = [], rivalGotIt = false, renewals = 0, previous = Int64.max
            while renewals < 4 {
                holders.insert(try await redis.send(.get(lockKey)))
                if try await rival.acquire(on: redis) { rivalGotIt = true; break }
                if case .integer(let left) = try await redis.send(.raw(["PTTL", lockKey])) {
                    if left > previous { renewals += 1 }
                    previous = left
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            return (holders, rivalGotIt, renewals)
        }
        release.add()
        let outcome = try await withDeadline(.seconds(30)) { try await finalising.value }
        guard case .written = outcome else { Issue.record("not written: \(outcome)"); return }
        #expect(!seen.rivalGotIt && seen.renewals == 4 && seen.holders.count == 1 && seen.holders.first != .some(nil), "one holder throughout \(seen.renewals) renewals: the lease was extended")
        #expect(try await redis.send(.exists([lockKey])) == 0, "released at the end")
        await pool.close()
    }

    @Test func theRankingOrdersCompleteSetsByMeanScore() throws {
        let job = JobDescription(id: "j", dataset: "d", folds: 2, seed: 1, priority: .normal, taskCount: 6, created: "")
        func result(_ algorithm: String, _ set: Int, _ fold: Int, r2: Double) -> TaskResult {
            var metrics = RegressionMetrics(actual: [1, 2], predicted: [1, 2])
            metrics.r2 = r2
            metrics.mse = 1 - r2
            return .init(task: "\(algorithm)-\(set)-\(fold)", algorithm: algorithm, parameters: ["k": String(set)], parameterSet: set, fold: fold, metrics: metrics, fitSeconds: 0.5, worker: "w")
        }
        var failed = TaskRecord()
        failed.state = .failed
        failed.attempts = 3
        failed.lastError = "boom"
        var done = TaskRecord()
        done.state = .done
        let results = [result("rf", 0, 0, r2: 0.5), result("rf", 0, 1, r2: 0.7), result("rf", 1, 0, r2: 0.9), result("lr", 0, 0, r2: 0.95), result("lr", 0, 1, r2: 0.85)]
        var states = Dictionary(uniqueKeysWithValues: results.map { ($0.task, done) })
        states["rf-1-1"] = failed
        // A result whose task the job does not count as done (a stray late run) is left out.
        let stray = result("svr", 0, 0, r2: 0.99)
        let ranked = GridResults.rank(job, results: results + [stray], states: states, finaliser: "me")
        #expect(ranked.ranking.map(\.label) == ["lr #0 k=0", "rf #0 k=0", "rf #1 k=1"], "complete sets by mean, the incomplete one last")
        #expect(abs(ranked.ranking[0].meanR2 - 0.9) < 1e-12 && abs(ranked.ranking[0].stdR2 - 0.05) < 1e-12)
        #expect(ranked.ranking[2].foldsFailed == 1 && ranked.ranking[2].foldR2 == [0.9, nil])
        #expect(ranked.failures == [.init(task: "rf-1-1", attempts: 3, error: "boom")])
        let html = GridReportPage.html(ranked)
        #expect(html.contains(#"data-set="lr-0""#) && html.contains("0.9000 ± 0.0500") && html.contains("boom"))
    }

    @Test func theLifecycleHandsBackWithoutCountingAndRepeatsAStartHarmlessly() {
        let life = TaskLifecycle()
        let started = life.start(TaskRecord(), worker: "a", now: 5)!
        #expect(life.start(started, worker: "a", now: 5) == started, "the same start again (a lost reply) changes nothing")
        #expect(life.start(started, worker: "b", now: 6) == nil, "another worker's delivery does not take it over")
        #expect(life.start(started, worker: "a", now: 6)?.attempts == 2, "its own worker may start it again")
        let back = life.handBack(started, worker: "a")!
        #expect(back.state == .queued && back.attempts == 0 && back.worker == nil)
        #expect(life.handBack(started, worker: "b") == nil, "only its worker hands a task back")
    }
}

/// A thread-safe count for tests.
final class Counter: Sendable {
    private let count = Mutex(0)
    var value: Int { count.withLock { $0 } }
    func add() { count.withLock { $0 += 1 } }
}

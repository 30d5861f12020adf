import Foundation
import RedisClient
import Testing
import TestSupport
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool

/// Reclaims at the edges: a worker wrongly taken for dead, a live worker on a task longer than the
/// idle timeout, a high-priority job arriving while a normal one runs, and per-job attempt limits.
@Suite struct PoolReclaimTests {
    /// The owners of a task stream's pending deliveries (XPENDING's consumer per entry).
    static func pendingOwners(_ redis: RedisClient, _ keys: PoolKeys, _ priority: JobPriority = .normal) async throws -> [String: String] {
        let reply = try await redis.send(.raw(["XPENDING", keys.tasks(priority), keys.group, "-", "+", "100"]))
        guard case .array(let entries) = reply else { return [:] }
        var owners: [String: String] = [:]
        for entry in entries {
            guard case .array(let fields) = entry, fields.count >= 2, let id = fields[0].string, let owner = fields[1].string else { continue }
            owners[id] = owner
        }
        return owners
    }

    /// A worker that stalled past the idle timeout finishes after another took its task over,
    /// and that other worker then dies. The late finisher's result stands (written once), but it
    /// must leave the delivery alone: it now sits in the dead worker's pending list, and only
    /// from there can a third worker reclaim the task, which is still `running` for the dead one.
    @Test func aWorkerTakenForDeadLeavesTheTakenOverDeliverySoTheTaskIsNeverStranded() async throws {
        let pool = try await PoolSetup()
        let (server, redis, keys, store) = (pool.server, pool.redis, pool.keys, pool.store)
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: server.configuration)
        try await subscriber.subscribe([keys.events])
        let job = try await pool.job(#"{"lr": {}}"#, folds: 2, seed: 7)

        // 1. The slow worker takes a task and starts it (it never registers: taken for dead).
        let slow = PoolWorker(keys: keys, name: "slow")
        let delivery = try #require(try await slow.deliveries.next(redis, on: redis))
        let task = delivery.task
        _ = try #require(try await store.update(job: job.id, task: task.id, on: redis) { $0.start($1, worker: "slow", now: 1) })
        // 2. Another worker reclaims it (the same stream entry moves to its pending list) and
        //    dies before finishing: it records the takeover and is never heard of again.
        var taker = PoolWorker(keys: keys, name: "taker")
        taker.idleTimeout = .milliseconds(100)
        var cursors: [JobPriority: String] = [:]
        var taken: TaskDelivery?
        try await waitUntil("the taker reclaims the task", timeout: .seconds(20), every: .milliseconds(50)) {
            taken = try await taker.deliveries.reclaimable(redis, on: redis, cursors: &cursors)
            return taken != nil
        }
        #expect(taken?.entry.id == delivery.entry.id && taken?.task.id == task.id)
        let takeover = try await store.update(job: job.id, task: task.id, on: redis) { $0.reclaim($1, by: "taker", reason: "its worker slow stopped answering", now: 2) }
        #expect(takeover?.record.worker == "taker" && takeover?.record.attempts == 2)
        #expect(try await Self.pendingOwners(redis, keys)[delivery.entry.id] == "taker")
        // The slow worker's heartbeat touch no longer pulls the entry back.
        let touched = try await slow.deliveries.touch(delivery.stream, delivery.entry.id, on: redis)
        #expect(!touched)
        #expect(try await Self.pendingOwners(redis, keys)[delivery.entry.id] == "taker", "still the taker's after the slow worker's touch")

        // 3. The slow worker finishes after all: its result is the one written, but the task is
        //    not its own any more, so it marks nothing and leaves the delivery where it is.
        let loaded = try await LoadedJob.load(job.id, keys: keys, on: redis)
        let result = try await PoolWorker.evaluate(task, loaded, worker: "slow", threads: 1)
        let status = WorkerStatus(name: "slow")
        status.begin(WorkerStatus.label(job.id, task.id), stream: delivery.stream, entry: delivery.entry.id)
        try await slow.succeeded(delivery, result, status: status, redis: redis)
        #expect(try await store.record(job: job.id, task: task.id, on: redis)?.worker == "taker", "still the taker's")
        #expect(try await Self.pendingOwners(redis, keys)[delivery.entry.id] == "taker", "the delivery is left to the taker")

        // 4. A third worker takes the dead taker's task over and ends the job.
        var third = PoolWorker(keys: keys, name: "third")
        third.idleTimeout = .milliseconds(300)
        _ = try await PoolTests.runWorker(third, server: server) { try await store.counts(job: job.id, on: redis).isFinished }
        let record = try #require(try await store.record(job: job.id, task: task.id, on: redis))
        #expect(record.state == .done && record.worker == "third" && record.attempts == 3, "\(record)")
        let results = try await redis.send(.hgetall(keys.results(job.id)))
        #expect(results.count == 2, "one result per task")
        let stored = try #require(try results[task.id].map { try PoolJSON.decode(TaskResult.self, from: $0, "the result") })
        #expect(stored.worker == "slow", "the first result written stays")
        let (pending, queued) = (try await Self.pendingOwners(redis, keys), try await redis.send(.xlen(keys.tasks(.normal))))
        #expect(pending.isEmpty && queued == 0, "nothing pending or queued")

        // Every event up to a marker published after the workers stopped: the late finisher
        // announced nothing, the third worker announced the task done once, the job finished once.
        let marker = uniqueName("marker")
        _ = try await redis.send(.publish(keys.events, Array(marker.utf8)))
        let seen = try await withDeadline(.seconds(20)) {
            var seen: [PoolEvent] = []
            for await event in events {
                guard case .message(let message) = event else { continue }
                if message.payload == Array(marker.utf8) { break }
                seen.append(try PoolJSON.decode(PoolEvent.self, from: message.payload, "a pool event")) // only the pool writes here
            }
            return seen
        }
        let done = seen.filter { $0.task(in: .done) == task.id }
        #expect(done.count == 1 && done.first.map { if case .task(_, _, _, "third", _) = $0 { true } else { false } } == true, "\(seen)")
        #expect(seen.filter(\.isCompletion).count == 1)
        await subscriber.close()
        await pool.close()
    }

    /// The touch itself: it sets the delivery's idle time back to zero (so XAUTOCLAIM's
    /// min-idle never sees a live worker's task as abandoned), keeps its owner, and is not
    /// counted as another delivery. Shown by order, not by the clock: of two deliveries, the one
    /// delivered first looks idle longer until it is touched, and then shorter.
    @Test func aTouchResetsTheDeliverysIdleTimeAndNothingElse() async throws {
        let pool = try await PoolSetup()
        let (redis, keys) = (pool.redis, pool.keys)
        _ = try await pool.job(#"{"lr": {}}"#, folds: 2, seed: 4)
        let holder = PoolWorker(keys: keys, name: "holder")
        let first = try #require(try await holder.deliveries.next(redis, on: redis))
        let second = try #require(try await holder.deliveries.next(redis, on: redis))
        func pending() async throws -> [String: (owner: String, idle: Int64, deliveries: Int64)] {
            let reply = try await redis.send(.raw(["XPENDING", keys.tasks(.normal), keys.group, "-", "+", "10"]))
            guard case .array(let entries) = reply else { return [:] }
            var out: [String: (owner: String, idle: Int64, deliveries: Int64)] = [:]
            for case .array(let fields) in entries where fields.count >= 4 {
                guard let id = fields[0].string, let owner = fields[1].string, case .integer(let idle) = fields[2], case .integer(let count) = fields[3] else { continue }
                out[id] = (owner, idle, count)
            }
            return out
        }
        // Both idle long enough that a millisecond's resolution cannot make them equal.
        try await waitUntil("both deliveries have been idle over a second", timeout: .seconds(20)) {
            try await pending().values.filter { $0.idle > 1_000 }.count == 2
        }
        let before = try await pending()
        let (firstBefore, secondBefore) = (try #require(before[first.entry.id]), try #require(before[second.entry.id]))
        #expect(firstBefore.idle >= secondBefore.idle, "delivered first, idle longest: \(before)")
        let touched = try await holder.deliveries.touch(first.stream, first.entry.id, on: redis)
        #expect(touched, "its own pending entry")
        let after = try await pending()
        let (firstAfter, secondAfter) = (try #require(after[first.entry.id]), try #require(after[second.entry.id]))
        #expect(firstAfter.idle < secondAfter.idle, "touched after the second was delivered, so idle shorter than it: \(after)")
        #expect(firstAfter.owner == "holder" && firstAfter.deliveries == 1, "same owner, not another delivery: \(firstAfter)")
        await pool.close()
    }
}

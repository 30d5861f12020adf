import Foundation
public import Regression
public import RedisClient

/// A worker's side of the task streams: reading new tasks (high priority first), taking over a
/// silent worker's (XAUTOCLAIM with a resumed cursor), touching the running delivery, and where
/// a delivery goes when its task ends: acknowledged and deleted, queued again, or left to the
/// worker that runs it now.
public struct TaskDeliveries: Sendable {
    public var keys: PoolKeys
    /// This worker's consumer name in the pool's group.
    public var consumer: String
    public var store: JobStore
    public var registry: WorkerRegistry
    public var retry: PatientRetry
    /// How long one read waits for a normal-priority task.
    public var block: Duration
    /// A delivered task idle this long whose worker has no heartbeat is taken over.
    public var idleTimeout: Duration
    public var log: @Sendable (String) -> Void

    /// The next task: a high-priority one when any waits, else a normal one (waiting `block`).
    public func next(_ reader: RedisClient, on redis: RedisClient) async throws(ExperimentError) -> TaskDelivery? {
        for (priority, wait) in [(JobPriority.high, Duration?.none), (.normal, block)] {
            let stream = keys.tasks(priority)
            let entries: [RedisStreamEntry]
            do {
                entries = try await reader.send(.xreadgroup(group: keys.group, consumer: consumer, stream: stream, count: 1, block: wait))
            } catch where error.serverCode == .noGroup {
                try await store.ensureGroups(on: reader)
                continue
            } catch {
                throw .redis(error, "reading \(stream)")
            }
            if let entry = entries.first { return try await parse(stream, entry, reclaimed: false, on: redis) }
        }
        return nil
    }

    /// A delivered task whose worker went silent: claimed (XAUTOCLAIM) once idle longer than
    /// `idleTimeout`. A live worker touches its running delivery every beat, so an idle entry is
    /// a silent worker's; a task whose worker still says it runs it (a worker that paused longer
    /// than the idle timeout) is left to it: the claimed entry is handed back to that worker's
    /// pending list, where its touches keep it.
    /// XAUTOCLAIM looks at no more than ten entries per claim asked for, so each stream's scan
    /// goes on from `cursors` (where the last call stopped) and wraps around at the end: every
    /// pending entry is looked at within a few calls, however many tasks run.
    public func reclaimable(_ reader: RedisClient, on redis: RedisClient, cursors: inout [JobPriority: String]) async throws(ExperimentError) -> TaskDelivery? {
        for priority in JobPriority.allCases {
            let stream = keys.tasks(priority)
            let claim: RedisAutoClaim
            do {
                claim = try await reader.send(.xautoclaim(stream, group: keys.group, consumer: consumer, minIdle: idleTimeout, start: cursors[priority] ?? "0-0", count: 1))
            } catch where error.serverCode == .noGroup {
                continue
            } catch {
                throw .redis(error, "XAUTOCLAIM on \(stream)")
            }
            cursors[priority] = claim.nextCursor
            guard let entry = claim.entries.first else { continue }
            guard let delivery = try await parse(stream, entry, reclaimed: true, on: redis) else { continue }
            let record = try await store.record(job: delivery.job, task: delivery.task.id, on: redis)
            guard let record, !record.state.isFinal else {
                try await acknowledge(delivery, on: redis) // ended already, or no such task: a stale entry
                continue
            }
            if let owner = record.worker, owner != consumer, try await registry.isRunning(delivery, by: owner, on: redis) {
                // Its worker is alive and still on it (a long task): back to that worker's
                // pending list, so its touches keep the entry from going idle again.
                do {
                    _ = try await redis.send(.xclaimJustID(stream, group: keys.group, consumer: owner, ids: [entry.id]))
                } catch {
                    throw .redis(error, "handing \(entry.id) back to \(owner)")
                }
                continue
            }
            return delivery
        }
        return nil
    }

    /// A stream entry as a task; an entry that is not one is logged and acknowledged (it would
    /// never succeed).
    func parse(_ stream: String, _ entry: RedisStreamEntry, reclaimed: Bool, on redis: RedisClient) async throws(ExperimentError) -> TaskDelivery? {
        if let job = entry["job"].map({ String(decoding: $0, as: UTF8.self) }), let json = entry["task"] {
            do throws(ExperimentError) {
                let task = try PoolJSON.decode(GridTask.self, from: json, "\(stream) entry \(entry.id) field task")
                return TaskDelivery(stream: stream, entry: entry, job: job, task: task, reclaimed: reclaimed)
            } catch {
                log("[\(consumer)] \(error.message): acknowledged and skipped")
            }
        } else {
            log("[\(consumer)] \(stream) entry \(entry.id) is not a task (needs fields job and task): acknowledged and skipped")
        }
        do { _ = try await redis.send(.xack(stream, group: keys.group, ids: [entry.id])) } catch { throw .redis(error, "XACK \(entry.id)") }
        return nil
    }

    /// Resets the idle time of this worker's own running delivery (XCLAIM to itself, JUSTID: the
    /// delivery count stays), so XAUTOCLAIM never takes a task whose worker still beats. Only
    /// while the entry is still pending for this worker: one that another worker took over
    /// (this one was taken for dead) stays with that worker. Returns whether it touched.
    @discardableResult
    public func touch(_ stream: String, _ entry: String, on redis: RedisClient) async throws(ExperimentError) -> Bool {
        do {
            return try await redis.run(Self.touchScript, keys: [stream], arguments: [Array(keys.group.utf8), Array(consumer.utf8), Array(entry.utf8)]) == .integer(1)
        } catch {
            throw .redis(error, "touching \(entry)")
        }
    }

    static let touchScript = RedisScript("""
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
    if pending[1] == nil or pending[1][2] ~= ARGV[2] then return 0 end
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
    return 1
    """)

    /// Where a delivery goes after its task's update: queued again (back of its stream) when the
    /// task is queued (unless `requeueIfQueued` is false: then acknowledged), acknowledged when it
    /// ended, and left alone when another worker runs the task from this very entry. That worker
    /// reclaimed it (XAUTOCLAIM moved it to its own pending list) and acknowledges it when it ends
    /// the task; acknowledging it here would leave that run with nothing to reclaim should its
    /// worker die. An entry still pending for this worker is a duplicate and goes. A refused
    /// update (nil) may be this worker's own whose reply was lost, so the state is read back
    /// then. Returns the state it acted on.
    public func settle(_ delivery: TaskDelivery, after update: TaskUpdate?, requeueIfQueued: Bool = true, on redis: RedisClient) async throws(ExperimentError) -> TaskRecord.State? {
        let record: TaskRecord?
        if let update {
            record = update.record
        } else {
            record = try await retry.run("reading task \(delivery.task.id)") { () throws(ExperimentError) in
                try await store.record(job: delivery.job, task: delivery.task.id, on: redis)
            }
        }
        switch record?.state {
        case .queued? where requeueIfQueued:
            try await requeue(delivery, on: redis)
        case .running? where record?.worker != consumer:
            let holder = try await pendingOwner(of: delivery, on: redis)
            if let holder, holder != consumer {
                log("[\(consumer)] \(delivery.job) \(delivery.task.id): \(record?.worker ?? "another worker") runs it now from this entry (pending for \(holder)); left to it")
            } else {
                try await acknowledge(delivery, on: redis)
            }
        default:
            try await acknowledge(delivery, on: redis)
        }
        return record?.state
    }

    /// The consumer whose pending list holds the delivery's entry (nil: not pending).
    func pendingOwner(of delivery: TaskDelivery, on redis: RedisClient) async throws(ExperimentError) -> String? {
        try await retry.run("reading the pending entry of \(delivery.task.id)") { () throws(ExperimentError) -> String? in
            do throws(RedisError) {
                return try await redis.send(.xpending(delivery.stream, group: keys.group, start: delivery.entry.id, end: delivery.entry.id, count: 1)).first?.consumer
            } catch {
                throw .redis(error, "XPENDING \(delivery.entry.id)")
            }
        }
    }

    /// The task's entry added again at the back of its stream, then the delivery acknowledged
    /// (a crash in between leaves a pending duplicate, which the task's state makes harmless).
    public func requeue(_ delivery: TaskDelivery, on redis: RedisClient) async throws(ExperimentError) {
        try await retry.run("re-queueing \(delivery.task.id)") { () throws(ExperimentError) in
            do throws(RedisError) { _ = try await redis.send(.xadd(delivery.stream, fields: delivery.entry.fields)) } catch { throw .redis(error, "re-queueing \(delivery.task.id)") }
        }
        try await acknowledge(delivery, on: redis)
    }

    /// XACK and XDEL in one round trip: a finished task's entry leaves the stream, so the task
    /// streams hold only work not yet done (their size is bounded by the queued tasks). The
    /// task's event, when given, is published in the same round trip.
    public func acknowledge(_ delivery: TaskDelivery, on redis: RedisClient, publishing event: PoolEvent? = nil) async throws(ExperimentError) {
        var pipeline = RedisPipeline(capacity: 3)
        pipeline.append(.xack(delivery.stream, group: keys.group, ids: [delivery.entry.id]))
        pipeline.append(.xdel(delivery.stream, ids: [delivery.entry.id]))
        if let event { pipeline.append(.publish(keys.events, try PoolJSON.encode(event, "a pool event"))) }
        let acknowledgement = pipeline
        try await retry.run("acknowledging \(delivery.task.id)") { () throws(ExperimentError) in
            do throws(RedisError) { _ = try await redis.execute(acknowledgement) } catch { throw .redis(error, "XACK \(delivery.entry.id)") }
        }
    }
}

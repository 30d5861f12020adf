import Foundation
import Durations
public import Regression
public import RedisClient
public import Backoff

/// One member of a worker pool: takes grid tasks from the shared consumer group (high-priority
/// tasks first, `TaskDeliveries`), trains the task's algorithm on its fold (`ModelEvaluation`),
/// writes the result once under the task's id, records the task's state (`JobStore`) and
/// acknowledges it. A task that throws is queued again after a back-off pause until its
/// attempts are used up, then failed with its error; the job goes on. Tasks whose worker stopped
/// beating (`WorkerRegistry`) are taken over. While Redis is unreachable the worker waits for it
/// (`PatientRetry`, up to `redisPatience`) rather than exiting, and a computed result is written
/// once Redis is back.
public struct PoolWorker: Sendable {
    public var keys: PoolKeys
    public var name: String
    public var store: JobStore
    /// How long one read waits for a normal-priority task.
    public var block: Duration = .milliseconds(200)
    /// How often the registry entry is renewed; it expires after three missed beats.
    public var heartbeat: Duration = .seconds(2)
    /// A delivered task idle this long whose worker has no heartbeat is taken over.
    public var idleTimeout: Duration = .seconds(30)
    /// After a stop request, how long the running task may take before it is handed back.
    public var stopGrace: Duration = .seconds(10)
    /// How long Redis may stay unreachable before the worker gives up.
    public var redisPatience: Duration = .seconds(300)
    /// The pause before a failed task is queued again, growing with its attempts.
    public var retryBackoff = ReconnectBackoff.Policy(initialDelay: .milliseconds(250), maximumDelay: .seconds(10))
    /// Threads for algorithms that take them (rf's `n_jobs`) when the task does not say.
    public var threads: Int?
    /// Data sets of jobs, shared by the workers of one process.
    public var cache = JobCache()
    /// Where progress lines go.
    public var log: @Sendable (String) -> Void = { _ in }

    public init(keys: PoolKeys, name: String) {
        self.keys = keys
        self.name = name
        store = JobStore(keys: keys)
    }

    /// The worker's registry.
    public var registry: WorkerRegistry { WorkerRegistry(keys: keys, heartbeat: heartbeat) }

    /// Redis steps wait out an outage this way.
    public var retry: PatientRetry {
        let (name, log) = (self.name, self.log)
        return PatientRetry(patience: redisPatience) { log("[\(name)] \($0)") }
    }

    /// The worker's side of the task streams.
    public var deliveries: TaskDeliveries {
        TaskDeliveries(keys: keys, consumer: name, store: store, registry: registry, retry: retry, block: block, idleTimeout: idleTimeout, log: log)
    }

    /// Takes and runs tasks until `stop` is requested; returns how many tasks it finished. On
    /// stop, the running task finishes within `stopGrace` or is handed back, and the registry
    /// entry is removed.
    public func run(redis: RedisClient, reader: RedisClient, stop: PoolStop) async throws(ExperimentError) -> Int {
        let status = WorkerStatus(name: name)
        let (registry, deliveries, retry) = (self.registry, self.deliveries, self.retry)
        try await retry.run("registering", stop: stop) { () throws(ExperimentError) in try await registry.register(status, on: redis) }
        // Each beat renews the registry entry and touches the running task's delivery (its idle
        // time back to zero), so only a silent worker's deliveries ever look abandoned.
        let beats = Task { [name, log] in
            let beat = min(heartbeat, idleTimeout / 3)
            while !Task.isCancelled {
                do { try await Task.sleep(for: beat) } catch { break } // cancelled: the worker stops
                do throws(ExperimentError) {
                    try await registry.register(status, on: redis)
                    if let (stream, entry) = status.delivery { try await deliveries.touch(stream, entry, on: redis) }
                } catch {
                    // The next beat tries again; a worker that stays silent is taken for dead.
                    if !error.isTransient { log("[\(name)] heartbeat: \(error.message)") }
                }
            }
        }
        var lastReclaim = ContinuousClock.now
        var cursors: [JobPriority: String] = [:]
        var outcome: Result<Void, ExperimentError> = .success(())
        while !stop.isRequested {
            // Taking a task: while Redis is away, wait for it (a stop ends the wait cleanly).
            var delivery: TaskDelivery?
            do throws(ExperimentError) {
                if ContinuousClock.now - lastReclaim >= min(idleTimeout, .seconds(1)) {
                    lastReclaim = .now
                    delivery = try await deliveries.reclaimable(reader, on: redis, cursors: &cursors)
                }
                if delivery == nil { delivery = try await deliveries.next(reader, on: redis) }
            } catch where error.isTransient {
                do throws(ExperimentError) {
                    try await retry.run("reading tasks", stop: stop) { () throws(ExperimentError) in try await registry.register(status, on: redis) }
                } catch where stop.isRequested {
                    break
                } catch {
                    outcome = .failure(error)
                    break
                }
                continue
            } catch {
                outcome = .failure(error)
                break
            }
            guard let delivery else { continue }
            // Running it: every Redis step inside waits for Redis up to `redisPatience`; past
            // that the worker exits, its registry entry goes, and live workers reclaim the task.
            do throws(ExperimentError) {
                try await handle(delivery, status: status, redis: redis, stop: stop)
            } catch {
                outcome = .failure(error)
                break
            }
            // The registry shows it idle at once; should that fail, the next beat renews it.
            do throws(ExperimentError) { try await registry.register(status, on: redis) } catch {
                if !error.isTransient { log("[\(name)] \(error.message)") }
            }
        }
        beats.cancel()
        await beats.value // no heartbeat after the entry is gone
        do throws(ExperimentError) { try await registry.deregister(name, on: redis) } catch {
            log("[\(name)] \(error.message); the entry expires on its own after \(registry.entryTTL)")
        }
        try outcome.get()
        return status.done
    }

    /// Runs one delivered task to its end: result written and acknowledged, retried, failed, or
    /// handed back when the worker is told to stop.
    func handle(_ delivery: TaskDelivery, status: WorkerStatus, redis: RedisClient, stop: PoolStop) async throws(ExperimentError) {
        let (job, task) = (delivery.job, delivery.task)
        let (deliveries, retry, registry) = (self.deliveries, self.retry, self.registry)
        if stop.isRequested, !delivery.reclaimed {
            try await deliveries.requeue(delivery, on: redis) // never started: back to the stream as it was
            return
        }
        let now = Date().timeIntervalSince1970
        let worker = name
        let owner = delivery.reclaimed ? try await store.record(job: job, task: task.id, on: redis)?.worker : nil
        // The registry names the task before its state names this worker, so a reclaiming
        // worker that sees this one as the task's owner also sees it on the task.
        status.begin(WorkerStatus.label(job, task.id), stream: delivery.stream, entry: delivery.entry.id)
        defer { status.end() }
        try await retry.run("registering \(task.id)") { () throws(ExperimentError) in try await registry.register(status, on: redis) }
        let started = try await retry.run("recording the start of \(task.id)") { () throws(ExperimentError) in
            try await store.update(job: job, task: task.id, on: redis) { life, record in
                delivery.reclaimed ? life.reclaim(record, by: worker, reason: "its worker \(owner ?? "?") stopped answering", now: now) : life.start(record, worker: worker, now: now)
            }
        }
        guard let started, started.record.state == .running else {
            if let started {
                // Failed now (a reclaim with the attempts used up): the entry goes.
                try await deliveries.acknowledge(delivery, on: redis)
                try await announce(job, task.id, started, on: redis)
            } else {
                // Done or failed already, or run by another worker: a duplicate entry, or this
                // very entry taken over while this worker stalled before its start (`settle`).
                _ = try await deliveries.settle(delivery, after: nil, requeueIfQueued: false, on: redis)
            }
            return
        }
        await publishQuietly(.task(job, task.id, started.record, worker: name), on: redis)
        log("[\(name)] \(job) \(task.id) started (attempt \(started.record.attempts))")
        let data: LoadedJob
        do {
            data = try await cache.job(job) { [keys] () throws(ExperimentError) in try await LoadedJob.load(job, keys: keys, on: redis) }
        } catch where error.isTransient {
            try await handBack(delivery, on: redis) // Redis went away while loading: let it be taken again
            throw error
        } catch {
            return try await failed(delivery, error: error.message, attempts: started.record.attempts, stop: stop, redis: redis)
        }
        switch await evaluateUnlessStopped(task, data, stop: stop) {
        case nil:
            log("[\(name)] \(job) \(task.id) handed back (stopping)")
            try await handBack(delivery, on: redis)
        case .failure(let error)?:
            try await failed(delivery, error: error.message, attempts: started.record.attempts, stop: stop, redis: redis)
        case .success(let result)?:
            try await succeeded(delivery, result, status: status, redis: redis)
        }
    }
}

import Foundation
import OwnThread
public import RedisClient
import Synchronization

/// One member of a worker pool: takes grid tasks from the shared consumer group (high-priority
/// tasks first), trains the task's algorithm on its fold, writes the result once under the task's
/// id, records the task's state and acknowledges it. A task that throws is queued again until
/// its attempts are used up, then failed with its error; the job goes on. Tasks whose worker
/// stopped beating are taken over (XAUTOCLAIM). While Redis is unreachable the worker waits for
/// it (up to `redisPatience`) rather than exiting, and a computed result is written once Redis
/// is back.
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

    /// A task as delivered: its stream entry and what it says.
    struct Delivery: Sendable {
        var stream: String
        var entry: RedisStreamEntry
        var job: String
        var task: GridTask
        var reclaimed: Bool
    }

    /// Takes and runs tasks until `stop` is requested; returns how many tasks it finished. On
    /// stop, the running task finishes within `stopGrace` or is handed back, and the registry
    /// entry is removed.
    public func run(redis: RedisClient, reader: RedisClient, stop: PoolStop) async throws(ExperimentError) -> Int {
        let status = WorkerStatus(name: name)
        try await patiently("registering", stop: stop) { () throws(ExperimentError) in try await register(status, on: redis) }
        // Each beat renews the registry entry and touches the running task's delivery (its idle
        // time back to zero), so only a silent worker's deliveries ever look abandoned.
        let beat = min(heartbeat, idleTimeout / 3)
        let beats = Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: beat)
                try? await register(status, on: redis)
                if let (stream, entry) = status.delivery { _ = try? await touch(stream, entry, on: redis) }
            }
        }
        var lastReclaim = ContinuousClock.now
        var cursors: [JobPriority: String] = [:]
        var outcome: Result<Void, ExperimentError> = .success(())
        while !stop.isRequested {
            // Taking a task: while Redis is away, wait for it (a stop ends the wait cleanly).
            var delivery: Delivery?
            do throws(ExperimentError) {
                if ContinuousClock.now - lastReclaim >= min(idleTimeout, .seconds(1)) {
                    lastReclaim = .now
                    delivery = try await reclaimable(reader, on: redis, cursors: &cursors)
                }
                if delivery == nil { delivery = try await next(reader, on: redis) }
            } catch where error.isTransient {
                do throws(ExperimentError) {
                    try await patiently("reading tasks", stop: stop) { () throws(ExperimentError) in try await register(status, on: redis) }
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
                try? await register(status, on: redis) // the registry shows it idle at once
            } catch {
                outcome = .failure(error)
                break
            }
        }
        beats.cancel()
        await beats.value // no heartbeat after the entry is gone
        _ = try? await redis.send(.del([keys.worker(name)])) // deregistered
        try outcome.get()
        return status.done
    }

    /// Runs one delivered task to its end: result written and acknowledged, retried, failed, or
    /// handed back when the worker is told to stop.
    func handle(_ delivery: Delivery, status: WorkerStatus, redis: RedisClient, stop: PoolStop) async throws(ExperimentError) {
        let (job, task) = (delivery.job, delivery.task)
        if stop.isRequested, !delivery.reclaimed {
            try await requeue(delivery, on: redis) // never started: back to the stream as it was
            return
        }
        let now = Date().timeIntervalSince1970
        let worker = name
        let owner = delivery.reclaimed ? try await store.record(job: job, task: task.id, on: redis)?.worker : nil
        // The registry names the task before its state names this worker, so a reclaiming
        // worker that sees this one as the task's owner also sees it on the task.
        status.begin(WorkerStatus.label(job, task.id), stream: delivery.stream, entry: delivery.entry.id)
        defer { status.end() }
        try? await register(status, on: redis)
        let started = try await patiently("recording the start of \(task.id)", stop: nil) { () throws(ExperimentError) in
            try await store.update(job: job, task: task.id, on: redis) { life, record in
                delivery.reclaimed ? life.reclaim(record, by: worker, reason: "its worker \(owner ?? "?") stopped answering", now: now) : life.start(record, worker: worker, now: now)
            }
        }
        guard let started, started.record.state == .running else {
            if let started {
                // Failed now (a reclaim with the attempts used up): the entry goes.
                try await acknowledge(delivery, on: redis)
                try await announce(job, task.id, started, on: redis)
            } else {
                // Done or failed already, or run by another worker: a duplicate entry, or this
                // very entry taken over while this worker stalled before its start (`settle`).
                _ = try await settle(delivery, after: nil, requeueIfQueued: false, on: redis)
            }
            return
        }
        try? await store.publish(.task(job, task.id, started.record, worker: name), on: redis)
        log("[\(name)] \(job) \(task.id) started (attempt \(started.record.attempts))")
        let data: LoadedJob
        do {
            data = try await cache.job(job) { () throws(ExperimentError) in try await self.load(job, on: redis) }
        } catch where error.isTransient {
            try await handBack(delivery, on: redis) // Redis went away while loading: let it be taken again
            throw error
        } catch {
            return try await failed(delivery, error: error.message, redis: redis)
        }
        switch await evaluateUnlessStopped(task, data, stop: stop) {
        case nil:
            log("[\(name)] \(job) \(task.id) handed back (stopping)")
            try await handBack(delivery, on: redis)
        case .failure(let error)?:
            try await failed(delivery, error: error.message, redis: redis)
        case .success(let result)?:
            try await succeeded(delivery, result, status: status, redis: redis)
        }
    }

    /// Writes a result once (HSETNX by task id), marks the task done and acknowledges it; a result
    /// already there (the task ran twice) is left as it was and announced once.
    func succeeded(_ delivery: Delivery, _ result: TaskResult, status: WorkerStatus, redis: RedisClient) async throws(ExperimentError) {
        let (job, task) = (delivery.job, delivery.task)
        let worker = name
        let written = try await patiently("writing the result of \(task.id)", stop: nil) { () throws(ExperimentError) -> Bool in
            do throws(RedisError) {
                return try await redis.send(.raw(["HSETNX", keys.results(job), task.id, String(decoding: JobStore.json(result), as: UTF8.self)])) == .integer(1)
            } catch {
                throw .redis(error, "writing the result of \(task.id)")
            }
        }
        let finishedAt = Date().timeIntervalSince1970
        let update = try await patiently("recording \(task.id) done", stop: nil) { () throws(ExperimentError) in
            try await store.update(job: job, task: task.id, on: redis) { $0.succeed($1, worker: worker, now: finishedAt) }
        }
        status.finished()
        if let update {
            try await acknowledge(delivery, on: redis, publishing: .task(job, task.id, update.record, worker: name))
            try await announceCompletion(job, ifEndedBy: update, on: redis)
        } else {
            // Refused: another worker took the task over (this one was taken for dead) or ended
            // it. Its result is written, so there is nothing to queue again.
            _ = try await settle(delivery, after: nil, requeueIfQueued: false, on: redis)
            try await announceCompletion(job, on: redis) // this may still have been the last task
        }
        log("[\(name)] \(job) \(task.id) done in \(String(format: "%.3f", result.fitSeconds)) s" + (written ? "" : " (another run of it had written its result)") + (update == nil ? " (another worker runs or ended it now)" : ""))
    }

    /// A task threw: queued again (back of its stream) while attempts remain, else failed.
    func failed(_ delivery: Delivery, error message: String, redis: RedisClient) async throws(ExperimentError) {
        let (job, task) = (delivery.job, delivery.task)
        let worker = name
        let now = Date().timeIntervalSince1970
        let update = try await patiently("recording the failure of \(task.id)", stop: nil) { () throws(ExperimentError) in
            try await store.update(job: job, task: task.id, on: redis) { $0.fail($1, worker: worker, error: message, now: now) }
        }
        let state = try await settle(delivery, after: update, on: redis)
        if let update { try await announce(job, task.id, update, on: redis) } else { try await announceCompletion(job, on: redis) }
        log("[\(name)] \(job) \(task.id) \(state == .queued ? "will be retried" : state == .running ? "runs elsewhere now" : "failed"): \(message)")
    }

    /// A task's record as Redis has it now (nil: no such task).
    func currentRecord(of delivery: Delivery, on redis: RedisClient) async throws(ExperimentError) -> TaskRecord? {
        try await patiently("reading task \(delivery.task.id)", stop: nil) { () throws(ExperimentError) in
            try await store.record(job: delivery.job, task: delivery.task.id, on: redis)
        }
    }

    /// Resets the idle time of this worker's own running delivery (XCLAIM to itself, JUSTID: the
    /// delivery count stays), so XAUTOCLAIM never takes a task whose worker still beats. Only
    /// while the entry is still pending for this worker: one that another worker took over
    /// (this one was taken for dead) stays with that worker. Returns whether it touched.
    @discardableResult
    func touch(_ stream: String, _ entry: String, on redis: RedisClient) async throws(ExperimentError) -> Bool {
        do {
            return try await redis.run(Self.touchScript, keys: [stream], arguments: [Array(keys.group.utf8), Array(name.utf8), Array(entry.utf8)]) == .integer(1)
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

    /// Gives a running task back (stop, or Redis lost while loading): queued, attempt not counted.
    func handBack(_ delivery: Delivery, on redis: RedisClient) async throws(ExperimentError) {
        let worker = name
        let update = try await patiently("handing back \(delivery.task.id)", stop: nil) { () throws(ExperimentError) in
            try await store.update(job: delivery.job, task: delivery.task.id, on: redis) { $0.handBack($1, worker: worker) }
        }
        _ = try await settle(delivery, after: update, on: redis)
        if let update { try await announce(delivery.job, delivery.task.id, update, on: redis) }
    }

    /// Where a delivery goes after its task's update: queued again (back of its stream) when the
    /// task is queued (unless `requeueIfQueued` is false: then acknowledged), acknowledged when it
    /// ended, and left alone when another worker runs the task from this very entry. That worker
    /// reclaimed it (XAUTOCLAIM moved it to its own pending list) and acknowledges it when it ends
    /// the task; acknowledging it here would leave that run with nothing to reclaim should its
    /// worker die. An entry still pending for this worker is a duplicate and goes. A refused
    /// update (nil) may be this worker's own whose reply was lost, so the state is read back
    /// then. Returns the state it acted on.
    func settle(_ delivery: Delivery, after update: TaskUpdate?, requeueIfQueued: Bool = true, on redis: RedisClient) async throws(ExperimentError) -> TaskRecord.State? {
        let record = update == nil ? try await currentRecord(of: delivery, on: redis) : update?.record
        switch record?.state {
        case .queued? where requeueIfQueued:
            try await requeue(delivery, on: redis)
        case .running? where record?.worker != name:
            let holder = try await pendingOwner(of: delivery, on: redis)
            if let holder, holder != name {
                log("[\(name)] \(delivery.job) \(delivery.task.id): \(record?.worker ?? "another worker") runs it now from this entry (pending for \(holder)); left to it")
            } else {
                try await acknowledge(delivery, on: redis)
            }
        default:
            try await acknowledge(delivery, on: redis)
        }
        return record?.state
    }

    /// The consumer whose pending list holds the delivery's entry (nil: not pending).
    func pendingOwner(of delivery: Delivery, on redis: RedisClient) async throws(ExperimentError) -> String? {
        try await patiently("reading the pending entry of \(delivery.task.id)", stop: nil) { () throws(ExperimentError) -> String? in
            let reply: RedisReply
            do throws(RedisError) {
                reply = try await redis.send(.raw(["XPENDING", delivery.stream, keys.group, delivery.entry.id, delivery.entry.id, "1"]))
            } catch {
                throw .redis(error, "XPENDING \(delivery.entry.id)")
            }
            guard case .array(let entries) = reply, case .array(let fields)? = entries.first, fields.count >= 2 else { return nil }
            return fields[1].string
        }
    }

    /// The task's entry added again at the back of its stream, then the delivery acknowledged
    /// (a crash in between leaves a pending duplicate, which the task's state makes harmless).
    func requeue(_ delivery: Delivery, on redis: RedisClient) async throws(ExperimentError) {
        try await patiently("re-queueing \(delivery.task.id)", stop: nil) { () throws(ExperimentError) in
            do throws(RedisError) { _ = try await redis.send(.xadd(delivery.stream, fields: delivery.entry.fields)) } catch { throw .redis(error, "re-queueing \(delivery.task.id)") }
        }
        try await acknowledge(delivery, on: redis)
    }

    /// XACK and XDEL in one round trip: a finished task's entry leaves the stream, so the task
    /// streams hold only work not yet done (their size is bounded by the queued tasks). The
    /// task's event, when given, is published in the same round trip.
    func acknowledge(_ delivery: Delivery, on redis: RedisClient, publishing event: PoolEvent? = nil) async throws(ExperimentError) {
        var pipeline = RedisPipeline(capacity: 3)
        pipeline.append(.xack(delivery.stream, group: keys.group, ids: [delivery.entry.id]))
        pipeline.append(.raw(["XDEL", delivery.stream, delivery.entry.id]))
        if let event { pipeline.append(.publish(keys.events, JobStore.json(event))) }
        try await patiently("acknowledging \(delivery.task.id)", stop: nil) { () throws(ExperimentError) in
            do throws(RedisError) { _ = try await redis.execute(pipeline) } catch { throw .redis(error, "XACK \(delivery.entry.id)") }
        }
    }

    /// Publishes a task's new state, and the job's completion when this change may have ended it.
    func announce(_ job: String, _ task: String, _ update: TaskUpdate, on redis: RedisClient) async throws(ExperimentError) {
        try? await store.publish(.task(job, task, update.record, worker: name), on: redis)
        try await announceCompletion(job, ifEndedBy: update, on: redis)
    }

    /// The job's completion, when `update` may have ended its last task (or repeated the change
    /// that did, after a lost reply).
    func announceCompletion(_ job: String, ifEndedBy update: TaskUpdate, on redis: RedisClient) async throws(ExperimentError) {
        if update.finishedJob || (update.record.state.isFinal && update.previous == update.record.state) {
            try await announceCompletion(job, on: redis)
        }
    }

    /// Publishes the job's completion if every task has ended and nobody announced it yet (one
    /// announcement per job, whoever gets there first; also after a lost reply).
    func announceCompletion(_ job: String, on redis: RedisClient) async throws(ExperimentError) {
        let worker = name
        guard let counts = try await patiently("announcing job \(job)", stop: nil, { () throws(ExperimentError) in
            try await store.claimCompletion(job: job, by: worker, on: redis)
        }) else { return }
        try? await store.publish(.finished(job, counts), on: redis)
        log("[\(name)] job \(job) finished: \(counts.done) done, \(counts.failed) failed")
    }

    /// Runs a Redis step, retrying while Redis is unreachable (up to `redisPatience`, or until a
    /// stop when `stop` is given); other errors are thrown at once.
    func patiently<T>(_ what: String, stop: PoolStop?, _ body: () async throws(ExperimentError) -> T) async throws(ExperimentError) -> T {
        let deadline = ContinuousClock.now + redisPatience
        var warned = false
        while true {
            do {
                return try await body()
            } catch where error.isTransient && ContinuousClock.now < deadline && stop?.isRequested != true {
                if !warned { log("[\(name)] Redis unavailable while \(what): \(error.message); waiting for it"); warned = true }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    /// A delivered task whose worker went silent: claimed (XAUTOCLAIM) once idle longer than
    /// `idleTimeout`. A live worker touches its running delivery every beat, so an idle entry is
    /// a silent worker's; a task whose worker still says it runs it (a worker that paused longer
    /// than the idle timeout) is left to it: the claimed entry is handed back to that worker's
    /// pending list, where its touches keep it.
    /// XAUTOCLAIM looks at no more than ten entries per claim asked for, so each stream's scan
    /// goes on from `cursors` (where the last call stopped) and wraps around at the end: every
    /// pending entry is looked at within a few calls, however many tasks run.
    func reclaimable(_ reader: RedisClient, on redis: RedisClient, cursors: inout [JobPriority: String]) async throws(ExperimentError) -> Delivery? {
        for priority in JobPriority.allCases {
            let stream = keys.tasks(priority)
            let claim: RedisAutoClaim
            do {
                claim = try await reader.send(.xautoclaim(stream, group: keys.group, consumer: name, minIdle: idleTimeout, start: cursors[priority] ?? "0-0", count: 1))
            } catch where error.serverErrorCode == "NOGROUP" {
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
            if let owner = record.worker, owner != name, try await isRunning(delivery, by: owner, on: redis) {
                // Its worker is alive and still on it (a long task): back to that worker's
                // pending list, so its touches keep the entry from going idle again.
                do {
                    _ = try await redis.send(.raw(["XCLAIM", stream, keys.group, owner, "0", entry.id, "JUSTID"]))
                } catch {
                    throw .redis(error, "handing \(entry.id) back to \(owner)")
                }
                continue
            }
            return delivery
        }
        return nil
    }

    /// Whether `owner` is alive and says it runs the delivered task. A live worker that is on
    /// another task (or none) lost this one: its writes went with a Redis crash that kept the
    /// task's start but not its end, so nobody else would ever finish it.
    func isRunning(_ delivery: Delivery, by owner: String, on redis: RedisClient) async throws(ExperimentError) -> Bool {
        let entry: [UInt8]?
        do { entry = try await redis.send(.get(keys.worker(owner))) } catch { throw .redis(error, "reading the registry") }
        guard let entry else { return false } // no heartbeat: dead
        guard let info = try? JSONDecoder().decode(PoolSnapshot.WorkerInfo.self, from: Data(entry)) else { return true } // unreadable: assume alive and busy
        return info.currentTask == WorkerStatus.label(delivery.job, delivery.task.id)
    }

    /// Writes this worker's registry entry (host, pid, started, current task, tasks done, mean
    /// task seconds) with a TTL of three heartbeats.
    func register(_ status: WorkerStatus, on redis: RedisClient) async throws(ExperimentError) {
        let ttl = max(300, Int(Worker.seconds(heartbeat) * 3000))
        do { _ = try await redis.send(.set(keys.worker(name), status.json(), expiry: .milliseconds(ttl))) } catch { throw .redis(error, "registering worker \(name)") }
    }

    /// The next task: a high-priority one when any waits, else a normal one (waiting `block`).
    func next(_ reader: RedisClient, on redis: RedisClient) async throws(ExperimentError) -> Delivery? {
        for (priority, wait) in [(JobPriority.high, Duration?.none), (.normal, block)] {
            let stream = keys.tasks(priority)
            let entries: [RedisStreamEntry]
            do {
                entries = try await reader.send(.xreadgroup(group: keys.group, consumer: name, stream: stream, count: 1, block: wait))
            } catch where error.serverErrorCode == "NOGROUP" {
                try await store.ensureGroups(on: reader)
                continue
            } catch {
                throw .redis(error, "reading \(stream)")
            }
            if let entry = entries.first { return try await parse(stream, entry, reclaimed: false, on: redis) }
        }
        return nil
    }

    /// A stream entry as a task; an entry that is not one is logged and acknowledged (it would
    /// never succeed).
    func parse(_ stream: String, _ entry: RedisStreamEntry, reclaimed: Bool, on redis: RedisClient) async throws(ExperimentError) -> Delivery? {
        if let job = entry["job"].map({ String(decoding: $0, as: UTF8.self) }),
           let json = entry["task"], let task = try? JSONDecoder().decode(GridTask.self, from: Data(json)) {
            return Delivery(stream: stream, entry: entry, job: job, task: task, reclaimed: reclaimed)
        }
        log("[\(name)] \(stream) entry \(entry.id) is not a task (needs fields job and task): acknowledged and skipped")
        do { _ = try await redis.send(.xack(stream, group: keys.group, ids: [entry.id])) } catch { throw .redis(error, "XACK \(entry.id)") }
        return nil
    }

    /// Reads a job's description and its whole data set (once per job and process).
    func load(_ job: String, on redis: RedisClient) async throws(ExperimentError) -> LoadedJob {
        guard let description = try await store.description(job: job, on: redis) else {
            throw ExperimentError(.stream, "job \(job) has no usable description (folds, seed) in \(keys.job(job))")
        }
        let data = keys.data(job)
        var set = StreamDataSet(stream: data)
        var cursor = "-"
        while true {
            let entries: [RedisStreamEntry]
            do { entries = try await redis.send(.xrange(data, start: cursor, count: 5_000)) } catch { throw .redis(error, "reading \(data)") }
            for entry in entries where entry.id != cursor { try set.add(entry) }
            guard let last = entries.last, last.id != cursor else { break }
            cursor = last.id
        }
        guard set.isComplete else { throw ExperimentError(.stream, "\(data): incomplete data set (\(set.count) of \(set.header?.sampleCount ?? 0) samples)") }
        let (header, matrix, targets) = try set.assembled()
        return LoadedJob(features: matrix, targets: targets, folds: try KFold(rows: header.sampleCount, folds: description.folds, seed: description.seed))
    }

    /// One task's result: its fold's test metrics.
    public struct TaskResult: Sendable, Codable, Equatable {
        public var task: String
        public var algorithm: String
        /// The task's parameter set as the grid gave it.
        public var parameters: [String: String]
        public var parameterSet: Int
        public var fold: Int
        public var metrics: RegressionMetrics
        public var fitSeconds: Double
        public var worker: String
    }

    /// Trains the task on its own thread; nil when a stop was requested and `stopGrace` passed
    /// first (the thread finishes on its own; its result is dropped).
    func evaluateUnlessStopped(_ task: GridTask, _ job: LoadedJob, stop: PoolStop) async -> Result<TaskResult, ExperimentError>? {
        let first = FirstResult<Result<TaskResult, ExperimentError>?>()
        let (worker, threads, grace) = (name, threads, stopGrace)
        Task {
            do throws(ExperimentError) { first.resume(.success(try await Self.evaluate(task, job, worker: worker, threads: threads))) } catch { first.resume(.failure(error)) }
        }
        let token = stop.onRequest {
            DispatchQueue.global().asyncAfter(deadline: .now() + Worker.seconds(grace)) { first.resume(nil) }
        }
        let outcome = await first.value()
        stop.remove(token)
        return outcome
    }

    static func evaluate(_ task: GridTask, _ job: LoadedJob, worker: String, threads: Int?) async throws(ExperimentError) -> TaskResult {
        guard task.fold >= 0, task.fold < job.folds.testRows.count else { throw ExperimentError(.stream, "task \(task.id): fold \(task.fold) does not exist") }
        var parameters = task.parameters
        if let threads, task.algorithm == RandomForestRegressor.name, parameters["n_jobs"] == nil { parameters["n_jobs"] = String(threads) }
        let regressor = try Regressors.named(task.algorithm).init(parameters: parameters)
        let train = job.folds.trainRows(task.fold), test = job.folds.testRows[task.fold]
        let trainX = job.features.rows(train), testX = job.features.rows(test)
        let trainY = train.map { job.targets[$0] }, testY = test.map { job.targets[$0] }
        return try await onOwnThread(stackSize: Worker.stackSize) { () throws(ExperimentError) -> TaskResult in
            let start = ContinuousClock.now
            let model = try regressor.fit(trainX, trainY)
            let fit = Worker.seconds(ContinuousClock.now - start)
            let metrics = RegressionMetrics(actual: testY, predicted: model.predict(testX))
            return TaskResult(task: task.id, algorithm: task.algorithm, parameters: task.parameters, parameterSet: task.parameterSet, fold: task.fold, metrics: metrics, fitSeconds: fit, worker: worker)
        }
    }
}

/// A loaded job: its data set and folds.
public struct LoadedJob: Sendable {
    var features: Matrix
    var targets: [Double]
    var folds: KFold
}

/// The data sets of the jobs a process works on, each loaded once however many of its workers
/// ask at the same time; the least recently used is dropped beyond `capacity` jobs.
public actor JobCache {
    private var entries: [String: Task<LoadedJob, any Error>] = [:]
    private var order: [String] = []
    private let capacity: Int

    public init(capacity: Int = 4) {
        self.capacity = max(1, capacity)
    }

    func job(_ id: String, load: @escaping @Sendable () async throws(ExperimentError) -> LoadedJob) async throws(ExperimentError) -> LoadedJob {
        let task: Task<LoadedJob, any Error>
        if let existing = entries[id] {
            task = existing
        } else {
            task = Task { try await load() }
            entries[id] = task
        }
        order.removeAll { $0 == id }
        order.append(id)
        while order.count > capacity { entries[order.removeFirst()] = nil }
        do {
            return try await task.value
        } catch {
            if entries[id] == task { entries[id] = nil } // a failed load is tried again next time
            throw (error as? ExperimentError) ?? ExperimentError(.stream, "loading job \(id): \(error)")
        }
    }
}

/// What a worker reports in the registry; shared by its task loop and its heartbeat.
final class WorkerStatus: Sendable {
    private struct State {
        var current: String?
        var delivery: (stream: String, entry: String)?
        var began: ContinuousClock.Instant?
        var done = 0
        var totalSeconds = 0.0
    }

    private let state = Mutex(State())
    private let name: String
    private let started = ISO8601DateFormatter().string(from: Date())

    init(name: String) {
        self.name = name
    }

    /// How the registry names a task: `job/task`.
    static func label(_ job: String, _ task: String) -> String { "\(job)/\(task)" }

    var done: Int { state.withLock { $0.done } }
    /// The running task's delivery (its stream and entry id), which the heartbeat touches.
    var delivery: (String, String)? { state.withLock { $0.delivery.map { ($0.stream, $0.entry) } } }
    func begin(_ task: String, stream: String, entry: String) {
        state.withLock { $0.current = task; $0.delivery = (stream, entry); $0.began = .now }
    }
    func end() { state.withLock { $0.current = nil; $0.delivery = nil; $0.began = nil } }
    /// The running task succeeded: counted, with its whole time (data, training, scoring, writes).
    func finished() {
        state.withLock { state in
            state.done += 1
            if let began = state.began { state.totalSeconds += Worker.seconds(ContinuousClock.now - began) }
        }
    }

    /// The registry entry, in the model `status` reads it back with.
    func json() -> [UInt8] {
        let s = state.withLock { $0 }
        let info = ProcessInfo.processInfo
        return JobStore.json(PoolSnapshot.WorkerInfo(
            name: name, host: info.hostName, pid: Int(info.processIdentifier), started: started, currentTask: s.current,
            tasksDone: s.done, meanTaskSeconds: s.done > 0 ? s.totalSeconds / Double(s.done) : 0))
    }
}

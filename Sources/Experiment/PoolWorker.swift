import Foundation
import RedisClient

/// One member of a worker pool: takes grid tasks from the shared consumer group (high-priority
/// tasks first), trains the task's algorithm on its fold, writes the result once under the task's
/// id, records the task's state and acknowledges it. A task that throws is queued again until
/// its attempts are used up, then failed with its error; the job goes on.
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

    public init(keys: PoolKeys, name: String) {
        self.keys = keys
        self.name = name
        store = JobStore(keys: keys)
    }

    /// A loaded job: its data set and folds.
    struct LoadedJob: Sendable {
        var features: Matrix
        var targets: [Double]
        var folds: KFold
    }

    /// Takes and runs tasks until `stop()` says so; returns how many tasks it finished.
    public func run(redis: RedisClient, reader: RedisClient, stop: @Sendable () -> Bool) async throws(ExperimentError) -> Int {
        var jobs: [String: LoadedJob] = [:]
        var finished = 0
        let status = WorkerStatus()
        try await register(status, on: redis)
        let beats = Task { [self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: heartbeat)
                try? await register(status, on: redis)
            }
        }
        defer { beats.cancel() }
        var lastReclaim = ContinuousClock.now
        while !stop() {
            var delivery: (String, RedisStreamEntry, reclaimed: Bool)?
            if ContinuousClock.now - lastReclaim >= min(idleTimeout, .seconds(1)) {
                lastReclaim = .now
                if let (stream, entry) = try await reclaimable(reader, on: redis) { delivery = (stream, entry, true) }
            }
            if delivery == nil, let (stream, entry) = try await next(reader) { delivery = (stream, entry, false) }
            guard let (stream, entry, reclaimed) = delivery else { continue }
            guard let job = entry["job"].map({ String(decoding: $0, as: UTF8.self) }),
                  let taskJSON = entry["task"], let task = try? JSONDecoder().decode(GridTask.self, from: Data(taskJSON)) else {
                try await acknowledge(stream, entry.id, on: redis) // not a task of ours: never retried
                continue
            }
            let now = Date().timeIntervalSince1970
            let worker = name
            let record = try await store.update(job: job, task: task.id, on: redis) { life, record in
                reclaimed ? life.reclaim(record, by: worker, reason: "its worker \(record.worker ?? "?") stopped answering", now: now) : life.start(record, worker: worker, now: now)
            }
            guard let record, record.state == .running else {
                try await acknowledge(stream, entry.id, on: redis) // done or failed already (or failed now: attempts used up)
                if let record { try await event(job, task.id, record.state.rawValue, on: redis) }
                continue
            }
            status.begin(task.id)
            try await register(status, on: redis)
            defer { status.end() }
            do {
                if jobs[job] == nil { jobs[job] = try await load(job, on: redis) }
                let result = try await Self.evaluate(task, jobs[job]!, worker: name)
                _ = try await redis.send(.raw(["HSETNX", keys.results(job), task.id, String(decoding: JobStore.json(result), as: UTF8.self)]))
                _ = try await store.update(job: job, task: task.id, on: redis) { $0.succeed($1, worker: worker, now: Date().timeIntervalSince1970) }
                finished += 1
                status.finished(seconds: result.fitSeconds)
                try await acknowledge(stream, entry.id, on: redis)
                try await event(job, task.id, "done", on: redis)
            } catch {
                let message = (error as? ExperimentError)?.message ?? "\(error)"
                let record = try await store.update(job: job, task: task.id, on: redis) { $0.fail($1, worker: worker, error: message, now: Date().timeIntervalSince1970) }
                if record?.state == .queued {
                    // Retried: the task goes to the back of its stream for any worker to take.
                    do { _ = try await redis.send(.xadd(stream, fields: entry.fields)) } catch { throw ExperimentError(.redis, "re-queueing task \(task.id): \(error)") }
                }
                try await acknowledge(stream, entry.id, on: redis)
                try await event(job, task.id, record?.state.rawValue ?? "failed", on: redis)
            }
        }
        beats.cancel()
        await beats.value // no heartbeat after the entry is gone
        _ = try? await redis.send(.del([keys.worker(name)])) // deregistered
        return finished
    }

    /// A delivered task whose worker went silent: claimed (XAUTOCLAIM) once idle longer than
    /// `idleTimeout`; a task whose worker still beats (a long task) is left to it.
    func reclaimable(_ reader: RedisClient, on redis: RedisClient) async throws(ExperimentError) -> (String, RedisStreamEntry)? {
        for priority in JobPriority.allCases {
            let stream = keys.tasks(priority)
            let claim: RedisAutoClaim
            do {
                claim = try await reader.send(.xautoclaim(stream, group: keys.group, consumer: name, minIdle: idleTimeout, count: 1))
            } catch where error.serverErrorCode == "NOGROUP" {
                continue
            } catch {
                throw ExperimentError(.redis, "XAUTOCLAIM on \(stream): \(error)")
            }
            guard let entry = claim.entries.first else { continue }
            if let job = entry["job"].map({ String(decoding: $0, as: UTF8.self) }),
               let task = entry["task"].flatMap({ try? JSONDecoder().decode(GridTask.self, from: Data($0)) }),
               let owner = try await store.states(job: job, on: redis)[task.id]?.worker, owner != name,
               (try? await redis.send(.exists([keys.worker(owner)]))) == 1 {
                continue // its worker is alive and still on it
            }
            return (stream, entry)
        }
        return nil
    }

    /// Writes this worker's registry entry (host, pid, started, current task, tasks done, mean
    /// task seconds) with a TTL of three heartbeats.
    func register(_ status: WorkerStatus, on redis: RedisClient) async throws(ExperimentError) {
        let ttl = max(1, Int(heartbeat.components.seconds) * 3)
        do { _ = try await redis.send(.set(keys.worker(name), status.json(name: name), expiry: .seconds(ttl))) } catch { throw ExperimentError(.redis, "registering worker \(name): \(error)") }
    }
    /// The next task: a high-priority one when any waits, else a normal one (waiting `block`).
    func next(_ reader: RedisClient) async throws(ExperimentError) -> (String, RedisStreamEntry)? {
        for (priority, wait) in [(JobPriority.high, Duration?.none), (.normal, block)] {
            let stream = keys.tasks(priority)
            do {
                if let entry = try await reader.send(.xreadgroup(group: keys.group, consumer: name, stream: stream, count: 1, block: wait)).first {
                    return (stream, entry)
                }
            } catch where error.serverErrorCode == "NOGROUP" {
                do { try await reader.send(.xgroupCreate(stream, group: keys.group, id: "0", makeStream: true)) } catch where error.serverErrorCode == "BUSYGROUP" {} catch {
                    throw ExperimentError(.redis, "joining the pool on \(stream): \(error)")
                }
            } catch {
                throw ExperimentError(.redis, "reading \(stream): \(error)")
            }
        }
        return nil
    }

    func acknowledge(_ stream: String, _ id: String, on redis: RedisClient) async throws(ExperimentError) {
        do { _ = try await redis.send(.xack(stream, group: keys.group, ids: [id])) } catch { throw ExperimentError(.redis, "XACK \(id): \(error)") }
    }

    func event(_ job: String, _ task: String, _ state: String, on redis: RedisClient) async throws(ExperimentError) {
        let text = #"{"job":"\#(job)","task":"\#(task)","state":"\#(state)","worker":\#(StreamFormat.quoted(name))}"#
        do { _ = try await redis.send(.publish(keys.events, Array(text.utf8))) } catch { throw ExperimentError(.redis, "publishing an event: \(error)") }
    }

    /// Reads a job's description and its whole data set (once per job and worker).
    func load(_ job: String, on redis: RedisClient) async throws(ExperimentError) -> LoadedJob {
        let description: [String: [UInt8]]
        do { description = try await redis.send(.hgetall(keys.job(job))) } catch { throw ExperimentError(.redis, "reading job \(job): \(error)") }
        func field(_ name: String) -> String? { description[name].map { String(decoding: $0, as: UTF8.self) } }
        guard let folds = field("folds").flatMap(Int.init), let seed = field("seed").flatMap(UInt64.init), let data = field("data") else {
            throw ExperimentError(.stream, "job \(job) has no usable description (folds, seed, data)")
        }
        var set = StreamDataSet(stream: data)
        var cursor = "-"
        while true {
            let entries: [RedisStreamEntry]
            do { entries = try await redis.send(.xrange(data, start: cursor, count: 5_000)) } catch { throw ExperimentError(.redis, "reading \(data): \(error)") }
            for entry in entries where entry.id != cursor { try set.add(entry) }
            guard let last = entries.last, last.id != cursor else { break }
            cursor = last.id
        }
        guard set.isComplete else { throw ExperimentError(.stream, "\(data): incomplete data set (\(set.count) of \(set.header?.sampleCount ?? 0) samples)") }
        let (h, matrix, targets) = try set.assembled()
        return LoadedJob(features: matrix, targets: targets, folds: try KFold(rows: h.sampleCount, folds: folds, seed: seed))
    }

    /// One task's result: its fold's test metrics.
    public struct TaskResult: Sendable, Codable, Equatable {
        public var task: String
        public var algorithm: String
        public var parameters: [String: String]
        public var parameterSet: Int
        public var fold: Int
        public var metrics: RegressionMetrics
        public var fitSeconds: Double
        public var worker: String
    }

    static func evaluate(_ task: GridTask, _ job: LoadedJob, worker: String) async throws(ExperimentError) -> TaskResult {
        guard task.fold >= 0, task.fold < job.folds.testRows.count else { throw ExperimentError(.stream, "task \(task.id): fold \(task.fold) does not exist") }
        let regressor = try Regressors.named(task.algorithm).init(parameters: task.parameters)
        let train = job.folds.trainRows(task.fold), test = job.folds.testRows[task.fold]
        let trainX = job.features.rows(train), testX = job.features.rows(test)
        let trainY = train.map { job.targets[$0] }, testY = test.map { job.targets[$0] }
        return try await Worker.onThread { () throws(ExperimentError) -> TaskResult in
            let start = ContinuousClock.now
            let model = try regressor.fit(trainX, trainY)
            let fit = Worker.seconds(ContinuousClock.now - start)
            let metrics = RegressionMetrics(actual: testY, predicted: model.predict(testX))
            return TaskResult(task: task.id, algorithm: task.algorithm, parameters: regressor.parameters, parameterSet: task.parameterSet, fold: task.fold, metrics: metrics, fitSeconds: fit, worker: worker)
        }
    }
}

/// What a worker reports in the registry; shared by its task loop and its heartbeat.
final class WorkerStatus: Sendable {
    private struct State {
        var current: String?
        var done = 0
        var totalSeconds = 0.0
    }

    private let state = LockedValue(State())
    private let started = ISO8601DateFormatter().string(from: Date())

    func begin(_ task: String) { var s = state.get(); s.current = task; state.set(s) }
    func end() { var s = state.get(); s.current = nil; state.set(s) }
    func finished(seconds: Double) { var s = state.get(); s.done += 1; s.totalSeconds += seconds; state.set(s) }

    func json(name: String) -> String {
        let s = state.get()
        let mean = s.done > 0 ? s.totalSeconds / Double(s.done) : 0
        return #"{"name":\#(StreamFormat.quoted(name)),"host":\#(StreamFormat.quoted(ProcessInfo.processInfo.hostName)),"pid":\#(ProcessInfo.processInfo.processIdentifier),"started":"\#(started)","current_task":\#(s.current.map(StreamFormat.quoted) ?? "null"),"tasks_done":\#(s.done),"mean_task_seconds":\#(mean)}"#
    }
}

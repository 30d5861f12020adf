import Foundation
public import RedisClient

/// The Redis names of a worker pool (the distributed grid-search runner), under one prefix
/// (default `pool`). docs/scaling.md lists what each holds and how large it grows.
public struct PoolKeys: Sendable, Equatable {
    public var prefix: String

    public init(prefix: String = "pool") {
        self.prefix = prefix
    }

    /// The task stream of a priority; every worker reads both through `group`.
    public func tasks(_ priority: JobPriority) -> String { "\(prefix):tasks:\(priority.rawValue)" }
    /// The one consumer group all workers share (competing consumers).
    public var group: String { "\(prefix)_workers" }
    /// Every job's id, scored by its creation time in milliseconds (sorted set).
    public var jobs: String { "\(prefix):jobs" }
    /// A job's description and counters (hash): data stream, folds, seed, priority, task count,
    /// created, and how many tasks are in each state.
    public func job(_ id: String) -> String { "\(prefix):job:\(id)" }
    /// A job's task states (hash): task id → `TaskRecord` JSON.
    public func taskStates(_ id: String) -> String { "\(prefix):job:\(id):tasks" }
    /// A job's task results (hash): task id → result JSON, written once (HSETNX).
    public func results(_ id: String) -> String { "\(prefix):job:\(id):results" }
    /// The stream holding a job's data set (the experiment pipeline's format).
    public func data(_ id: String) -> String { "\(prefix):job:\(id):data" }
    /// A job's final results (JSON), written once by the finaliser holding `finaliserLock`.
    public func final(_ id: String) -> String { "\(prefix):job:\(id):final" }
    /// The finaliser's lock: a random token with a lease (SET NX PX).
    public func finaliserLock(_ id: String) -> String { "\(prefix):job:\(id):finaliser" }
    /// Progress and completion events (pub/sub channel).
    public var events: String { "\(prefix):events" }
    /// A live worker's registry entry (JSON, with a TTL its heartbeat renews).
    public func worker(_ name: String) -> String { "\(prefix):worker:\(name)" }
    /// The pattern matching every registry entry.
    public var workerPattern: String { "\(prefix):worker:*" }
}

/// Which tasks workers take first.
public enum JobPriority: String, Sendable, Codable, CaseIterable {
    case high, normal
}

/// What a job is: its data set, how it is cross-validated, and its tasks.
public struct JobDescription: Sendable, Equatable {
    public var id: String
    public var dataset: String
    public var folds: Int
    public var seed: UInt64
    public var priority: JobPriority
    public var taskCount: Int
    public var created: String
    /// Attempts a task of this job gets before it is failed for good.
    public var maxAttempts = TaskLifecycle().maximumAttempts
}

/// A job's progress: how many of its tasks are in each state.
public struct JobCounts: Sendable, Equatable, Codable {
    public var tasks = 0
    public var queued = 0
    public var running = 0
    public var done = 0
    public var failed = 0

    public init() {}

    /// Every task is done or failed.
    public var isFinished: Bool { tasks > 0 && done + failed >= tasks }
}

/// What one task-state change did.
public struct TaskUpdate: Sendable, Equatable {
    /// The task's record after the change.
    public var record: TaskRecord
    /// The state it left.
    public var previous: TaskRecord.State
    /// This change ended the job's last unfinished task.
    public var finishedJob: Bool
}

/// Creates jobs and keeps their task states: optimistic transactions on the job's state hash
/// through the pure `TaskLifecycle`, with the job's per-state counters changed in the same
/// transaction, so `status` reads a job's progress in one command.
public struct JobStore: Sendable {
    public var keys: PoolKeys
    public var lifecycle = TaskLifecycle()

    public init(keys: PoolKeys) {
        self.keys = keys
    }

    /// The most attempts a job may give its tasks.
    public static let attemptRange = 1...100

    /// Why `maxAttempts` cannot be a job's attempt limit (nil: it can).
    public static func attemptLimitProblem(_ maxAttempts: Int) -> String? {
        attemptRange.contains(maxAttempts) ? nil : "--max-attempts must be from \(attemptRange.lowerBound) to \(attemptRange.upperBound), got \(maxAttempts)"
    }

    /// Creates a job: the data set dispatched once into the job's data stream, then in one
    /// transaction the description, every task queued in its state hash and added to the
    /// priority's task stream, and the job listed. A refused command leaves no part of the job
    /// behind (the data stream is deleted again), so a retry starts clean; a reply lost to the
    /// connection leaves the job listed (created) or says its outcome is unknown and keeps the
    /// data stream.
    public func create(_ dataset: Dataset, grid: GridSpec, folds: Int, seed: UInt64, priority: JobPriority, maxAttempts: Int = TaskLifecycle().maximumAttempts, on redis: RedisClient) async throws(ExperimentError) -> JobDescription {
        _ = try KFold(rows: dataset.rowCount, folds: folds, seed: seed) // refuse impossible folds first
        if let problem = Self.attemptLimitProblem(maxAttempts) { throw ExperimentError(.parameter, problem) }
        let tasks = GridTask.plan(grid, folds: folds)
        let now = Date()
        let id = "\(Int(now.timeIntervalSince1970 * 1000))-\(UUID().uuidString.prefix(8).lowercased())"
        let created = ISO8601DateFormatter().string(from: now)
        var job = JobDescription(id: id, dataset: dataset.name, folds: folds, seed: seed, priority: priority, taskCount: tasks.count, created: created)
        job.maxAttempts = maxAttempts
        let dataKey = keys.data(id), dataKeys = ExperimentKeys(stream: dataKey)
        var run: String?
        var outcomeUnknown = false
        do throws(ExperimentError) {
            run = try await Dispatcher(keys: dataKeys).dispatch(dataset, to: redis, replace: false)
            try await ensureGroups(on: redis)
            let fresh = String(decoding: Self.json(TaskRecord()), as: UTF8.self)
            func text(_ value: some CustomStringConvertible) -> String { value.description }
            var commands = [RedisArguments(["HSET", keys.job(id)] + [
                ("dataset", text(dataset.name)), ("data", dataKey), ("folds", text(folds)), ("seed", text(seed)),
                ("priority", priority.rawValue), ("tasks", text(tasks.count)), ("max_attempts", text(maxAttempts)), ("created", created),
                ("samples", text(dataset.rowCount)), ("features", text(dataset.featureCount)), ("target", dataset.targetName),
                ("queued", text(tasks.count)), ("running", "0"), ("done", "0"), ("failed", "0"), ("finished", "0"),
            ].flatMap { [$0.0, $0.1] })]
            commands.reserveCapacity(tasks.count * 2 + 2)
            for task in tasks {
                commands.append(RedisArguments(["HSET", keys.taskStates(id), task.id, fresh]))
                commands.append(RedisArguments(["XADD", keys.tasks(priority), "*", "job", id, "task", String(decoding: Self.json(task), as: UTF8.self)]))
            }
            commands.append(RedisArguments(["ZADD", keys.jobs, String(Int(now.timeIntervalSince1970 * 1000)), id]))
            let outcome: RedisTransactionResult<Void>?
            let queued = commands
            do {
                outcome = try await redis.transaction(watching: [], reads: RedisPipeline()) { _ throws(RedisError) in (queued, ()) }
            } catch where error.kind == .connectionLost || error.kind == .timeout {
                // Sent, but its reply lost: EXEC runs whole or not at all, and the job's listing
                // (its last command) says which, unless Redis has not got to it yet (it may
                // still be reading what was sent). Listed: created. Otherwise unknown.
                if case .bulk? = try? await redis.send(.raw(["ZSCORE", keys.jobs, id])) { return job }
                outcomeUnknown = true
                var unknown = ExperimentError.redis(error, "creating job \(id)")
                unknown.message += "; whether Redis created the job is unknown: if `status \(id)` does not list it, delete its data set (DEL \(dataKey))"
                throw unknown
            } catch {
                throw .redis(error, "creating job \(id)")
            }
            // A command Redis refused inside EXEC (the others ran: no rollback) leaves a partial
            // job: take back what was written, then report it.
            let replies = outcome?.replies ?? []
            if let refused = replies.first(where: { if case .error = $0 { true } else { false } }), case .error(let message) = refused {
                // The only bulk replies are XADD's entry ids.
                let added = replies.compactMap { reply -> String? in
                    if case .bulk(let bytes) = reply { String(decoding: bytes, as: UTF8.self) } else { nil }
                }
                var undo = RedisPipeline()
                if !added.isEmpty { undo.append(.raw(["XDEL", keys.tasks(priority)] + added)) }
                undo.append(.del([keys.job(id), keys.taskStates(id)]))
                undo.append(.raw(["ZREM", keys.jobs, id]))
                let undone = (try? await redis.execute(undo)).map { replies in !replies.contains { if case .error = $0 { true } else { false } } } ?? false
                throw ExperimentError(.redis, "creating job \(id): Redis refused a command (\(message)); " + (undone ? "what was written of the job is removed" : "removing what was written failed: delete \(keys.job(id)), \(keys.taskStates(id)) and \(dataKey)"))
            }
        } catch {
            // The data set without its job is of no use to anyone (kept when the job may exist).
            if !outcomeUnknown { _ = try? await redis.send(.del([dataKey] + (run.map { [dataKeys.run($0)] } ?? []))) }
            throw error
        }
        return job
    }

    /// Creates the pool's consumer group on both task streams unless it exists.
    public func ensureGroups(on redis: RedisClient) async throws(ExperimentError) {
        for priority in JobPriority.allCases {
            do {
                try await redis.send(.xgroupCreate(keys.tasks(priority), group: keys.group, id: "0", makeStream: true))
            } catch where error.serverErrorCode == "BUSYGROUP" {
                // The pool's group exists already.
            } catch {
                throw .redis(error, "creating the pool's consumer group on \(keys.tasks(priority))")
            }
        }
    }

    /// Applies a transition to one task's record atomically (WATCH on the job's state hash,
    /// retried on conflict), moving the job's state counters with it; nil when the transition
    /// was refused (a stale or duplicate event).
    public func update(job: String, task: String, on redis: RedisClient, _ transition: @escaping @Sendable (TaskLifecycle, TaskRecord) -> TaskRecord?) async throws(ExperimentError) -> TaskUpdate? {
        let states = keys.taskStates(job), jobKey = keys.job(job)
        let lifecycle = self.lifecycle
        var conflicts = 0
        for _ in 0..<64 {
            var reads = RedisPipeline()
            reads.append(RedisCommand<[UInt8]?>.hget(states, field: task))
            reads.append(RedisCommand<[UInt8]?>.hget(jobKey, field: "tasks"))
            reads.append(RedisCommand<[UInt8]?>.hget(jobKey, field: "max_attempts"))
            let outcome: RedisTransactionResult<(TaskRecord, TaskRecord.State, Int)?>?
            do {
                outcome = try await redis.transaction(watching: [states], reads: reads) { replies throws(RedisError) in
                    guard case .bulk(let json) = replies[0], let current = try? JSONDecoder().decode(TaskRecord.self, from: Data(json)) else {
                        return ([], nil)
                    }
                    var total = 0
                    if case .bulk(let bytes) = replies[1] { total = Int(String(decoding: bytes, as: UTF8.self)) ?? 0 }
                    // The job's own attempt limit (`grid --max-attempts`), else the store's.
                    var life = lifecycle
                    if case .bulk(let bytes) = replies[2], let limit = Int(String(decoding: bytes, as: UTF8.self)) { life = TaskLifecycle(maximumAttempts: limit) }
                    guard let next = transition(life, current) else { return ([], nil) }
                    var commands = [RedisArguments(["HSET", states, task, String(decoding: Self.json(next), as: UTF8.self)])]
                    if next.state != current.state {
                        commands.append(RedisArguments(["HINCRBY", jobKey, current.state.rawValue, "-1"]))
                        commands.append(RedisArguments(["HINCRBY", jobKey, next.state.rawValue, "1"]))
                        if next.state.isFinal, !current.state.isFinal { commands.append(RedisArguments(["HINCRBY", jobKey, "finished", "1"])) }
                    }
                    return (commands, (next, current.state, total))
                }
            } catch {
                throw .redis(error, "updating task \(task) of job \(job)")
            }
            guard let outcome else {
                // The state hash changed meanwhile (another worker's transition): read again,
                // after a short random pause so the workers of a busy job spread out.
                try? await Task.sleep(for: .microseconds(Int.random(in: 200...(200 + 100 * conflicts))))
                conflicts += 1
                continue
            }
            guard let (record, previous, total) = outcome.value else { return nil }
            // Each transaction gets its own value of the finished counter: one sees the last.
            let finishedJob = outcome.replies.count == 4 && outcome.replies[3] == .integer(Int64(total)) && total > 0
            return TaskUpdate(record: record, previous: previous, finishedJob: finishedJob)
        }
        var contention = ExperimentError(.redis, "updating task \(task) of job \(job): the state kept changing under 64 attempts")
        contention.isTransient = true // contention passes: worth retrying later
        throw contention
    }

    /// One task's record, or nil when the job has no such task.
    public func record(job: String, task: String, on redis: RedisClient) async throws(ExperimentError) -> TaskRecord? {
        let json: [UInt8]?
        do { json = try await redis.send(.hget(keys.taskStates(job), field: task)) } catch { throw .redis(error, "reading task \(task) of job \(job)") }
        return json.flatMap { try? JSONDecoder().decode(TaskRecord.self, from: Data($0)) }
    }

    /// Claims the job's completion announcement (HSETNX on the job): true exactly once, for
    /// whoever asks first once every task is done or failed.
    public func claimCompletion(job: String, by worker: String, on redis: RedisClient) async throws(ExperimentError) -> JobCounts? {
        let counts = try await self.counts(job: job, on: redis)
        guard counts.isFinished else { return nil }
        let reply: RedisReply
        do { reply = try await redis.send(.raw(["HSETNX", keys.job(job), "announced", worker])) } catch { throw .redis(error, "announcing job \(job)") }
        return reply == .integer(1) ? counts : nil
    }

    /// A job's description, or nil when there is no such job.
    public func description(job: String, on redis: RedisClient) async throws(ExperimentError) -> JobDescription? {
        let hash: [String: [UInt8]]
        do { hash = try await redis.send(.hgetall(keys.job(job))) } catch { throw .redis(error, "reading job \(job)") }
        func field(_ name: String) -> String? { hash[name].map { String(decoding: $0, as: UTF8.self) } }
        guard let folds = field("folds").flatMap(Int.init), let seed = field("seed").flatMap(UInt64.init) else { return nil }
        var description = JobDescription(id: job, dataset: field("dataset") ?? "?", folds: folds, seed: seed, priority: field("priority").flatMap(JobPriority.init) ?? .normal,
                                         taskCount: field("tasks").flatMap(Int.init) ?? 0, created: field("created") ?? "")
        if let limit = field("max_attempts").flatMap(Int.init) { description.maxAttempts = limit }
        return description
    }

    /// A job's task counts per state (from the counters; zero for an unknown job).
    public func counts(job: String, on redis: RedisClient) async throws(ExperimentError) -> JobCounts {
        let values: [[UInt8]?]
        do {
            values = try await redis.send(RedisCommand(RedisArguments(["HMGET", keys.job(job), "tasks", "queued", "running", "done", "failed"]), decode: { reply throws(RedisError) in
                guard case .array(let items) = reply else { throw RedisError(kind: .unexpectedReply, message: "HMGET answered \(reply)") }
                return items.map { if case .bulk(let bytes) = $0 { return bytes } else { return nil } }
            }))
        } catch {
            throw .redis(error, "reading job \(job)")
        }
        let numbers = values.map { $0.flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0 }
        var counts = JobCounts()
        counts.tasks = numbers[0]; counts.queued = numbers[1]; counts.running = numbers[2]; counts.done = numbers[3]; counts.failed = numbers[4]
        return counts
    }

    /// Job ids, newest first (at most `limit`).
    public func jobIDs(limit: Int = 20, on redis: RedisClient) async throws(ExperimentError) -> [String] {
        let reply: RedisReply
        do { reply = try await redis.send(.raw(["ZREVRANGE", keys.jobs, "0", String(max(0, limit - 1))])) } catch { throw .redis(error, "listing jobs") }
        guard case .array(let items) = reply else { return [] }
        return items.compactMap { if case .bulk(let bytes) = $0 { return String(decoding: bytes, as: UTF8.self) } else { return nil } }
    }

    /// Publishes an event (JSON) on the pool's channel.
    public func publish(_ event: PoolEvent, on redis: RedisClient) async throws(ExperimentError) {
        do { _ = try await redis.send(.publish(keys.events, Self.json(event))) } catch { throw .redis(error, "publishing an event") }
    }

    /// Sorted-key JSON of a value the tool itself made (cannot fail).
    static func json<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }

    /// Every task's record.
    public func states(job: String, on redis: RedisClient) async throws(ExperimentError) -> [String: TaskRecord] {
        let hash: [String: [UInt8]]
        do { hash = try await redis.send(.hgetall(keys.taskStates(job))) } catch { throw .redis(error, "reading job \(job)") }
        return hash.compactMapValues { try? JSONDecoder().decode(TaskRecord.self, from: Data($0)) }
    }
}

/// A message on the pool's event channel: a task changed state (`task` set), or a job finished
/// (`type` "job", with its counts).
public struct PoolEvent: Sendable, Codable, Equatable {
    public var type: String
    public var job: String
    public var task: String?
    public var state: String
    public var worker: String?
    public var attempts: Int?
    public var done: Int?
    public var failed: Int?
    public var tasks: Int?

    public static func task(_ job: String, _ task: String, _ record: TaskRecord, worker: String) -> PoolEvent {
        PoolEvent(type: "task", job: job, task: task, state: record.state.rawValue, worker: worker, attempts: record.attempts)
    }

    public static func finished(_ job: String, _ counts: JobCounts) -> PoolEvent {
        PoolEvent(type: "job", job: job, state: "finished", done: counts.done, failed: counts.failed, tasks: counts.tasks)
    }
}

import Foundation
public import Regression
public import RedisClient
public import Backoff

/// Creates jobs (`JobCreation.swift`) and keeps their task states: optimistic transactions on
/// the job's state hash through the pure `TaskLifecycle`, with the job's per-state counters
/// changed in the same transaction, so `status` reads a job's progress in one command.
public struct JobStore: Sendable {
    public var keys: PoolKeys
    public var lifecycle = TaskLifecycle()
    /// The pause before reading again after another worker's transition won (spreads the
    /// workers of a busy job out).
    public var conflictBackoff = ReconnectBackoff.Policy(initialDelay: .microseconds(200), maximumDelay: .milliseconds(20), multiplier: 1.5, jitter: 0.5)
    /// Transactions tried before contention is reported (as a transient error).
    public var maximumConflicts = 64

    public init(keys: PoolKeys) {
        self.keys = keys
    }

    /// Creates the pool's consumer group on both task streams unless it exists.
    public func ensureGroups(on redis: RedisClient) async throws(ExperimentError) {
        for priority in JobPriority.allCases {
            do {
                try await redis.send(.xgroupCreate(keys.tasks(priority), group: keys.group, id: "0", makeStream: true))
            } catch where error.serverCode == .busyGroup {
                // The pool's group exists already.
            } catch {
                throw .redis(error, "creating the pool's consumer group on \(keys.tasks(priority))")
            }
        }
    }

    /// What a transition's transaction decided from the record it read.
    private enum Decision: Sendable {
        case refused
        case failed(ExperimentError)
        case changed(TaskRecord, previous: TaskRecord.State, tasks: Int)
    }

    /// Applies a transition to one task's record atomically (WATCH on the job's state hash,
    /// retried on conflict after a back-off pause), moving the job's state counters with it; nil
    /// when the transition was refused (a stale or duplicate event).
    public func update(job: String, task: String, on redis: RedisClient, _ transition: @escaping @Sendable (TaskLifecycle, TaskRecord) -> TaskRecord?) async throws(ExperimentError) -> TaskUpdate? {
        let states = keys.taskStates(job), jobKey = keys.job(job)
        let lifecycle = self.lifecycle
        var pauses = ReconnectBackoff(policy: conflictBackoff)
        for _ in 0..<maximumConflicts {
            var reads = RedisPipeline()
            reads.append(RedisCommand<[UInt8]?>.hget(states, field: task))
            reads.append(RedisCommand<[UInt8]?>.hget(jobKey, field: "tasks"))
            reads.append(RedisCommand<[UInt8]?>.hget(jobKey, field: "max_attempts"))
            let outcome: RedisTransactionResult<Decision>?
            do {
                outcome = try await redis.transaction(watching: [states], reads: reads) { replies throws(RedisError) in
                    guard case .bulk(let json) = replies[0] else { return ([], .refused) } // no such task
                    let current: TaskRecord, encoded: [UInt8]
                    do throws(ExperimentError) { current = try PoolJSON.decode(TaskRecord.self, from: json, "\(states) field \(task)") } catch { return ([], .failed(error)) }
                    var total = 0
                    if case .bulk(let bytes) = replies[1] { total = Int(String(decoding: bytes, as: UTF8.self)) ?? 0 }
                    // The job's own attempt limit (`grid --max-attempts`), else the store's.
                    var life = lifecycle
                    if case .bulk(let bytes) = replies[2], let limit = Int(String(decoding: bytes, as: UTF8.self)) { life = TaskLifecycle(maximumAttempts: limit) }
                    guard let next = transition(life, current) else { return ([], .refused) }
                    do throws(ExperimentError) { encoded = try PoolJSON.encode(next, "task \(task)'s record") } catch { return ([], .failed(error)) }
                    var commands = [RedisCommand.hset(states, [(task, encoded)]).arguments]
                    if next.state != current.state {
                        commands.append(RedisCommand.hincrby(jobKey, field: current.state.rawValue, by: -1).arguments)
                        commands.append(RedisCommand.hincrby(jobKey, field: next.state.rawValue, by: 1).arguments)
                        if next.state.isFinal, !current.state.isFinal { commands.append(RedisCommand.hincrby(jobKey, field: "finished", by: 1).arguments) }
                    }
                    return (commands, .changed(next, previous: current.state, tasks: total))
                }
            } catch {
                throw .redis(error, "updating task \(task) of job \(job)")
            }
            guard let outcome else {
                // The state hash changed meanwhile (another worker's transition): read again,
                // after a short pause so the workers of a busy job spread out.
                do { try await Task.sleep(for: pauses.recordFailure()) } catch { throw ExperimentError(.timeout, "updating task \(task) of job \(job): cancelled", cause: error) }
                continue
            }
            switch outcome.value {
            case .refused:
                return nil
            case .failed(let error):
                throw error
            case .changed(let record, let previous, let total):
                // Each transaction gets its own value of the finished counter: one sees the last.
                let finishedJob = outcome.replies.count == 4 && outcome.replies[3] == .integer(Int64(total)) && total > 0
                return TaskUpdate(record: record, previous: previous, finishedJob: finishedJob)
            }
        }
        // Contention passes: worth retrying later.
        throw ExperimentError(.redis, "updating task \(task) of job \(job): the state kept changing under \(maximumConflicts) attempts", isTransient: true)
    }

    /// One task's record, or nil when the job has no such task.
    public func record(job: String, task: String, on redis: RedisClient) async throws(ExperimentError) -> TaskRecord? {
        let json: [UInt8]?
        do { json = try await redis.send(.hget(keys.taskStates(job), field: task)) } catch { throw .redis(error, "reading task \(task) of job \(job)") }
        guard let json else { return nil }
        return try PoolJSON.decode(TaskRecord.self, from: json, "\(keys.taskStates(job)) field \(task)")
    }

    /// Claims the job's completion announcement (HSETNX on the job): true exactly once, for
    /// whoever asks first once every task is done or failed.
    public func claimCompletion(job: String, by worker: String, on redis: RedisClient) async throws(ExperimentError) -> JobCounts? {
        let counts = try await self.counts(job: job, on: redis)
        guard counts.isFinished else { return nil }
        let claimed: Bool
        do { claimed = try await redis.send(.hsetnx(keys.job(job), field: "announced", worker)) } catch { throw .redis(error, "announcing job \(job)") }
        return claimed ? counts : nil
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
            values = try await redis.send(.hmget(keys.job(job), fields: ["tasks", "queued", "running", "done", "failed"]))
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
        do { return try await redis.send(.zrevrange(keys.jobs, start: 0, stop: max(0, limit - 1))) } catch { throw .redis(error, "listing jobs") }
    }

    /// Publishes an event (JSON) on the pool's channel.
    public func publish(_ event: PoolEvent, on redis: RedisClient) async throws(ExperimentError) {
        let json = try PoolJSON.encode(event, "a pool event")
        do { _ = try await redis.send(.publish(keys.events, json)) } catch { throw .redis(error, "publishing an event of job \(event.job)") }
    }

    /// Every task's record.
    public func states(job: String, on redis: RedisClient) async throws(ExperimentError) -> [String: TaskRecord] {
        let hash: [String: [UInt8]]
        do { hash = try await redis.send(.hgetall(keys.taskStates(job))) } catch { throw .redis(error, "reading job \(job)") }
        var records: [String: TaskRecord] = [:]
        for (task, json) in hash { records[task] = try PoolJSON.decode(TaskRecord.self, from: json, "\(keys.taskStates(job)) field \(task)") }
        return records
    }
}

import Foundation
public import Regression
public import ExperimentData
public import RedisClient

extension JobStore {
    /// The most attempts a job may give its tasks.
    public static let attemptRange = 1...100

    /// Why `maxAttempts` cannot be a job's attempt limit (nil: it can).
    public static func attemptLimitProblem(_ maxAttempts: Int) -> String? {
        attemptRange.contains(maxAttempts) ? nil : "--max-attempts must be from \(attemptRange.lowerBound) to \(attemptRange.upperBound), got \(maxAttempts)"
    }

    /// Creates a job: the data set written once into the job's data stream (`DataSetWriter`),
    /// then in one transaction the description, every task queued in its state hash and added
    /// to the priority's task stream, and the job listed. A refused command leaves no part of
    /// the job behind (the data stream is deleted again), so a retry starts clean; a reply lost
    /// to the connection leaves the job listed (created) or says its outcome is unknown and keeps
    /// the data stream.
    public func create(_ dataset: Dataset, grid: GridSpec, folds: Int, seed: UInt64, priority: JobPriority, maxAttempts: Int = TaskLifecycle().maximumAttempts, on redis: RedisClient) async throws(ExperimentError) -> JobDescription {
        _ = try KFold(rows: dataset.rowCount, folds: folds, seed: seed) // refuse impossible folds first
        if let problem = Self.attemptLimitProblem(maxAttempts) { throw ExperimentError(.parameter, problem) }
        let tasks = GridTask.plan(grid, folds: folds)
        let now = Date()
        let id = "\(Int(now.timeIntervalSince1970 * 1000))-\(UUID().uuidString.prefix(8).lowercased())"
        let created = ISO8601DateFormatter().string(from: now)
        var job = JobDescription(id: id, dataset: dataset.name, folds: folds, seed: seed, priority: priority, taskCount: tasks.count, created: created)
        job.maxAttempts = maxAttempts
        let writer = DataSetWriter(stream: keys.data(id))
        var run: String?
        let committed: Commit
        do throws(ExperimentError) {
            run = try await writer.write(dataset, to: redis)
            try await ensureGroups(on: redis)
            let commands = try creationCommands(job, dataset: dataset, tasks: tasks, listedAt: now)
            committed = try await commit(commands, of: job, on: redis)
        } catch {
            // The data set without its job is of no use to anyone.
            do { _ = try await redis.send(.del([writer.stream] + (run.map { [writer.runKey($0)] } ?? []))) } catch let cleanup {
                throw error.hinting("deleting its data set failed too (\(cleanup)): delete \(writer.stream)")
            }
            throw error
        }
        // The job may exist: its data set stays.
        if case .unknown(let error) = committed { throw error }
        return job
    }

    /// What the creation transaction did.
    private enum Commit {
        case created
        /// Its reply was lost and the job is not listed (yet): it may or may not exist.
        case unknown(ExperimentError)
    }

    /// The creation transaction's commands: the description, each task's state and stream
    /// entry, and last the job's listing (which tells after a lost reply whether it ran).
    private func creationCommands(_ job: JobDescription, dataset: Dataset, tasks: [GridTask], listedAt now: Date) throws(ExperimentError) -> [RedisArguments] {
        let id = job.id
        let fresh = String(decoding: try PoolJSON.encode(TaskRecord(), "a new task record"), as: UTF8.self)
        func text(_ value: some CustomStringConvertible) -> String { value.description }
        var commands = [RedisCommand.hset(keys.job(id), [
            ("dataset", text(dataset.name)), ("data", keys.data(id)), ("folds", text(job.folds)), ("seed", text(job.seed)),
            ("priority", job.priority.rawValue), ("tasks", text(tasks.count)), ("max_attempts", text(job.maxAttempts)), ("created", job.created),
            ("samples", text(dataset.rowCount)), ("features", text(dataset.featureCount)), ("target", dataset.targetName),
            ("queued", text(tasks.count)), ("running", "0"), ("done", "0"), ("failed", "0"), ("finished", "0"),
        ]).arguments]
        commands.reserveCapacity(tasks.count * 2 + 2)
        for task in tasks {
            let entry = try PoolJSON.encode(task, "task \(task.id)")
            commands.append(RedisCommand.hset(keys.taskStates(id), [(task.id, fresh)]).arguments)
            commands.append(RedisCommand.xadd(keys.tasks(job.priority), fields: [RedisStreamField("job", id), RedisStreamField("task", entry)]).arguments)
        }
        commands.append(RedisCommand.zadd(keys.jobs, score: Double(Int(now.timeIntervalSince1970 * 1000)), member: id).arguments)
        return commands
    }

    /// Runs the creation transaction. A command Redis refused inside EXEC (the others ran: no
    /// rollback) is taken back; a reply lost to the connection is settled by the job's listing.
    private func commit(_ commands: [RedisArguments], of job: JobDescription, on redis: RedisClient) async throws(ExperimentError) -> Commit {
        let id = job.id
        let outcome: RedisTransactionResult<Void>?
        do {
            outcome = try await redis.transaction(watching: [], reads: RedisPipeline()) { _ throws(RedisError) in (commands, ()) }
        } catch where error.kind == .connectionLost || error.kind == .timeout {
            // Sent, but its reply lost: EXEC runs whole or not at all, and the job's listing (its
            // last command) says which, unless Redis has not got to it yet (it may still be
            // reading what was sent). Listed: created. Otherwise unknown.
            do {
                if try await redis.send(.zscore(keys.jobs, member: id)) != nil { return .created }
            } catch {
                // Still unreachable: the outcome stays unknown (below).
            }
            return .unknown(ExperimentError(.redis, "creating job \(id)", cause: error,
                                            hint: "whether Redis created the job is unknown: if `status \(id)` does not list it, delete its data set (DEL \(keys.data(id)))",
                                            isTransient: true))
        } catch {
            throw .redis(error, "creating job \(id)")
        }
        let replies = outcome?.replies ?? []
        guard let index = replies.firstIndex(where: { if case .error = $0 { true } else { false } }), case .error(let message) = replies[index] else { return .created }
        // The only bulk replies are XADD's entry ids.
        let added = replies.compactMap { reply -> String? in
            if case .bulk(let bytes) = reply { String(decoding: bytes, as: UTF8.self) } else { nil }
        }
        var undo = RedisPipeline()
        if !added.isEmpty { undo.append(.xdel(keys.tasks(job.priority), ids: added)) }
        undo.append(.del([keys.job(id), keys.taskStates(id)]))
        undo.append(.zrem(keys.jobs, members: [id]))
        let refused = RedisError(kind: .server, message: message, command: index < commands.count ? commands[index].name : nil)
        let refusal = ExperimentError(.redis, "creating job \(id): Redis refused a command", cause: refused)
        let undone: [RedisReply]
        do { undone = try await redis.execute(undo) } catch {
            throw refusal.hinting("removing what was written failed (\(error)): delete \(keys.job(id)), \(keys.taskStates(id)) and \(keys.data(id))")
        }
        if let failed = undone.first(where: { if case .error = $0 { true } else { false } }) {
            throw refusal.hinting("removing what was written failed (\(failed)): delete \(keys.job(id)), \(keys.taskStates(id)) and \(keys.data(id))")
        }
        throw refusal.hinting("what was written of the job is removed")
    }
}

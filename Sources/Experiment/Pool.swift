import Foundation
import RedisClient

/// The Redis names of a worker pool (the distributed grid-search runner, issue 11), under one
/// prefix (default `pool`).
public struct PoolKeys: Sendable, Equatable {
    public var prefix: String

    public init(prefix: String = "pool") {
        self.prefix = prefix
    }

    /// The task stream of a priority; every worker reads both through `group`.
    public func tasks(_ priority: JobPriority) -> String { "\(prefix):tasks:\(priority.rawValue)" }
    /// The one consumer group all workers share (competing consumers).
    public var group: String { "\(prefix)_workers" }
    /// A job's description (hash): data stream, folds, seed, priority, task count, created.
    public func job(_ id: String) -> String { "\(prefix):job:\(id)" }
    /// A job's task states (hash): task id → `TaskRecord` JSON.
    public func taskStates(_ id: String) -> String { "\(prefix):job:\(id):tasks" }
    /// A job's task results (hash): task id → result JSON, written once (HSETNX).
    public func results(_ id: String) -> String { "\(prefix):job:\(id):results" }
    /// The stream holding a job's data set (the experiment pipeline's format).
    public func data(_ id: String) -> String { "\(prefix):job:\(id):data" }
    /// Progress and completion events.
    public var events: String { "\(prefix):events" }
    /// A live worker's registry entry (JSON, with a TTL its heartbeat renews).
    public func worker(_ name: String) -> String { "\(prefix):worker:\(name)" }
}

/// Which tasks workers take first.
public enum JobPriority: String, Sendable, Codable, CaseIterable {
    case high, normal
}

/// What a job is: its data set, how it is cross-validated, and its tasks.
public struct JobDescription: Sendable, Equatable {
    public var id: String
    public var folds: Int
    public var seed: UInt64
    public var priority: JobPriority
    public var taskCount: Int
}

/// Creates jobs and keeps their task states (optimistic transactions on the job's state hash,
/// through the pure `TaskLifecycle`).
public struct JobStore: Sendable {
    public var keys: PoolKeys
    public var lifecycle = TaskLifecycle()

    public init(keys: PoolKeys) {
        self.keys = keys
    }

    /// Creates a job: the data set dispatched once into the job's data stream, the description,
    /// every task queued in its state hash and added to the priority's task stream.
    public func create(_ dataset: Dataset, grid: GridSpec, folds: Int, seed: UInt64, priority: JobPriority, on redis: RedisClient) async throws(ExperimentError) -> JobDescription {
        _ = try KFold(rows: dataset.rowCount, folds: folds, seed: seed) // refuse impossible folds first
        let tasks = GridTask.plan(grid, folds: folds)
        let id = "\(Int(Date().timeIntervalSince1970 * 1000))-\(UUID().uuidString.prefix(8).lowercased())"
        let job = JobDescription(id: id, folds: folds, seed: seed, priority: priority, taskCount: tasks.count)
        _ = try await Dispatcher(keys: ExperimentKeys(stream: keys.data(id))).dispatch(dataset, to: redis, replace: false)
        let queued = Self.json(TaskRecord())
        for priority in JobPriority.allCases {
            do {
                try await redis.send(.xgroupCreate(keys.tasks(priority), group: keys.group, id: "0", makeStream: true))
            } catch where error.serverErrorCode == "BUSYGROUP" {
                // The pool's group exists already.
            } catch {
                throw ExperimentError(.redis, "creating the pool's consumer group: \(error)")
            }
        }
        var pipeline = RedisPipeline(capacity: tasks.count * 2 + 1)
        pipeline.append(.hset(keys.job(id), [
            ("dataset", Array(dataset.name.utf8)), ("data", Array(keys.data(id).utf8)), ("folds", Array(String(folds).utf8)),
            ("seed", Array(String(seed).utf8)), ("priority", Array(priority.rawValue.utf8)), ("tasks", Array(String(tasks.count).utf8)),
            ("created", Array(ISO8601DateFormatter().string(from: Date()).utf8)),
        ]))
        for task in tasks {
            pipeline.append(.hset(keys.taskStates(id), [(task.id, queued)]))
            pipeline.append(.xadd(keys.tasks(priority), fields: [RedisStreamField("job", id), RedisStreamField("task", Self.json(task))]))
        }
        let replies: [RedisReply]
        do { replies = try await redis.execute(pipeline) } catch { throw ExperimentError(.redis, "creating job \(id): \(error)") }
        for reply in replies {
            if case .error(let message) = reply { throw ExperimentError(.redis, "creating job \(id): \(message)") }
        }
        return job
    }

    /// Applies a transition to one task's record atomically (WATCH on the job's state hash,
    /// retried on conflict); returns the new record, or nil when the transition was refused.
    public func update(job: String, task: String, on redis: RedisClient, _ transition: @escaping @Sendable (TaskLifecycle, TaskRecord) -> TaskRecord?) async throws(ExperimentError) -> TaskRecord? {
        let key = keys.taskStates(job)
        let lifecycle = self.lifecycle
        for _ in 0..<64 {
            var reads = RedisPipeline()
            reads.append(RedisCommand<[UInt8]?>.hget(key, field: task))
            let outcome: RedisTransactionResult<TaskRecord?>?
            do {
                outcome = try await redis.transaction(watching: [key], reads: reads) { replies throws(RedisError) in
                    guard case .bulk(let json) = replies[0], let current = try? JSONDecoder().decode(TaskRecord.self, from: Data(json)) else {
                        return ([], nil)
                    }
                    guard let next = transition(lifecycle, current), let encoded = try? JSONEncoder().encode(next) else { return ([], nil) }
                    return ([RedisArguments(["HSET", key, task, String(decoding: encoded, as: UTF8.self)])], next)
                }
            } catch {
                throw ExperimentError(.redis, "updating task \(task) of job \(job): \(error)")
            }
            if let outcome { return outcome.value }
        }
        throw ExperimentError(.redis, "updating task \(task) of job \(job): the state kept changing under 64 attempts")
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
        do { hash = try await redis.send(.hgetall(keys.taskStates(job))) } catch { throw ExperimentError(.redis, "reading job \(job): \(error)") }
        return hash.compactMapValues { try? JSONDecoder().decode(TaskRecord.self, from: Data($0)) }
    }
}

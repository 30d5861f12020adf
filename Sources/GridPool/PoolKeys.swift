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

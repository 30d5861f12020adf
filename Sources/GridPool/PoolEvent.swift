/// A message on the pool's event channel (`PoolKeys.events`), as JSON:
/// `{"type":"task","job":…,"task":…,"state":…,"worker":…,"attempts":…}` when a task changed
/// state, `{"type":"job","job":…,"state":"finished","done":…,"failed":…,"tasks":…}` when the
/// job's last task ended. Fire-and-forget: the task states in Redis are the record.
public enum PoolEvent: Sendable, Equatable {
    /// A task changed state: its record after the change, and who changed it.
    case task(job: String, task: String, state: TaskRecord.State, worker: String, attempts: Int)
    /// Every task of the job is done or failed.
    case finished(job: String, done: Int, failed: Int, tasks: Int)

    /// The event of a task's new record.
    public static func task(_ job: String, _ task: String, _ record: TaskRecord, worker: String) -> PoolEvent {
        .task(job: job, task: task, state: record.state, worker: worker, attempts: record.attempts)
    }

    /// The event of a job's end.
    public static func finished(_ job: String, _ counts: JobCounts) -> PoolEvent {
        .finished(job: job, done: counts.done, failed: counts.failed, tasks: counts.tasks)
    }

    /// The job the event is about.
    public var job: String {
        switch self {
        case .task(let job, _, _, _, _), .finished(let job, _, _, _): job
        }
    }

    /// The job's completion (not a task's change).
    public var isCompletion: Bool {
        if case .finished = self { true } else { false }
    }
}

extension PoolEvent: Codable {
    private enum CodingKeys: String, CodingKey {
        case type, job, task, state, worker, attempts, done, failed, tasks
    }

    public init(from decoder: any Decoder) throws {
        let fields = try decoder.container(keyedBy: CodingKeys.self)
        let job = try fields.decode(String.self, forKey: .job)
        switch try fields.decode(String.self, forKey: .type) {
        case "task":
            self = .task(job: job, task: try fields.decode(String.self, forKey: .task), state: try fields.decode(TaskRecord.State.self, forKey: .state),
                         worker: try fields.decode(String.self, forKey: .worker), attempts: try fields.decode(Int.self, forKey: .attempts))
        case "job":
            self = .finished(job: job, done: try fields.decode(Int.self, forKey: .done), failed: try fields.decode(Int.self, forKey: .failed),
                             tasks: try fields.decode(Int.self, forKey: .tasks))
        case let other:
            throw DecodingError.dataCorruptedError(forKey: .type, in: fields, debugDescription: "unknown pool event type '\(other)'")
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var fields = encoder.container(keyedBy: CodingKeys.self)
        switch self {
        case .task(let job, let task, let state, let worker, let attempts):
            try fields.encode("task", forKey: .type)
            try fields.encode(job, forKey: .job)
            try fields.encode(task, forKey: .task)
            try fields.encode(state, forKey: .state)
            try fields.encode(worker, forKey: .worker)
            try fields.encode(attempts, forKey: .attempts)
        case .finished(let job, let done, let failed, let tasks):
            try fields.encode("job", forKey: .type)
            try fields.encode(job, forKey: .job)
            try fields.encode("finished", forKey: .state)
            try fields.encode(done, forKey: .done)
            try fields.encode(failed, forKey: .failed)
            try fields.encode(tasks, forKey: .tasks)
        }
    }
}

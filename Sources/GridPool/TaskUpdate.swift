/// What one task-state change did.
public struct TaskUpdate: Sendable, Equatable {
    /// The task's record after the change.
    public var record: TaskRecord
    /// The state it left.
    public var previous: TaskRecord.State
    /// This change ended the job's last unfinished task.
    public var finishedJob: Bool
}

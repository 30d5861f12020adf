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

/// A task's state in its job: what the job hash keeps per task.
public struct TaskRecord: Sendable, Equatable, Codable {
    public enum State: String, Sendable, Codable, CaseIterable {
        case queued, running, done, failed

        /// Done or failed: the task will not run again.
        public var isFinal: Bool { self == .done || self == .failed }
    }

    public var state: State = .queued
    public var worker: String?
    /// Times the task was started (a reclaimed task counts again).
    public var attempts = 0
    public var startedAt: Double?
    public var finishedAt: Double?
    public var lastError: String?

    public init() {}
}

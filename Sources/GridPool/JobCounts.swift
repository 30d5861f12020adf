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

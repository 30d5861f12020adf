import ExperimentData

/// The Redis names of an experiment, all derived from the task stream's name (default
/// `tasks_stream`), so several streams can share one Redis. A run is identified by the id of
/// its stream's header entry.
public struct ExperimentKeys: Sendable, Equatable {
    public var stream: String

    public init(stream: String = "tasks_stream") {
        self.stream = stream
    }

    /// Hash of a run's results: one field per algorithm, its result as JSON.
    public func results(run: String) -> String { "\(stream):results:\(run)" }
    /// Hash describing a run (data set name, shape, when dispatched).
    public func run(_ run: String) -> String { DataSetWriter(stream: stream).runKey(run) }
    /// Channel where each worker announces a finished algorithm: `{"run":…,"algorithm":…,"mse":…}`.
    public var completed: String { "\(stream):completed" }
    /// The consumer group of an algorithm's workers.
    public static func group(_ algorithm: String) -> String { "group_\(algorithm)" }
}

public import Regression

/// One grid task's result: its fold's test metrics, written once under the task's id in the
/// job's results hash.
public struct TaskResult: Sendable, Codable, Equatable {
    public var task: String
    public var algorithm: String
    /// The task's parameter set as the grid gave it.
    public var parameters: [String: String]
    public var parameterSet: Int
    public var fold: Int
    public var metrics: RegressionMetrics
    public var fitSeconds: Double
    public var worker: String

    public init(task: String, algorithm: String, parameters: [String: String], parameterSet: Int, fold: Int, metrics: RegressionMetrics, fitSeconds: Double, worker: String) {
        self.task = task
        self.algorithm = algorithm
        self.parameters = parameters
        self.parameterSet = parameterSet
        self.fold = fold
        self.metrics = metrics
        self.fitSeconds = fitSeconds
        self.worker = worker
    }
}

public import Regression
public import RedisClient

extension ExperimentError {
    /// A Redis failure while doing `what` (the context: command, key, task): the client's error
    /// kept as the cause; transient when it is (connection lost, server loading, failover).
    public static func redis(_ error: RedisError, _ what: String) -> ExperimentError {
        ExperimentError(.redis, what, cause: error, isTransient: error.isTransient)
    }
}

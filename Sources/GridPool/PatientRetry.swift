import Durations
public import Regression
import RedisClient
public import Backoff

/// How the pool waits out a Redis that is away: a step failing with a transient error
/// (connection lost, server loading, failover) is retried after the product's back-off
/// (`ReconnectBackoff`) until it succeeds, `patience` has passed, or a stop is requested; any
/// other error is thrown at once. The first wait of each step is logged.
public struct PatientRetry: Sendable {
    /// How long Redis may stay unreachable before the step's error is thrown.
    public var patience: Duration
    public var backoff: ReconnectBackoff.Policy
    /// Where the "waiting for Redis" line goes.
    public var log: @Sendable (String) -> Void

    public init(patience: Duration, backoff: ReconnectBackoff.Policy = .init(initialDelay: .milliseconds(50), maximumDelay: .seconds(1)), log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.patience = patience
        self.backoff = backoff
        self.log = log
    }

    /// Runs `body` (doing `what`), retrying while its failure is transient.
    public func run<T>(_ what: String, stop: PoolStop? = nil, _ body: () async throws(ExperimentError) -> T) async throws(ExperimentError) -> T {
        let clock = ContinuousClock()
        let deadline = clock.now + patience
        var delays = ReconnectBackoff(policy: backoff)
        while true {
            do {
                return try await body()
            } catch where error.isTransient && clock.now < deadline && stop?.isRequested != true {
                if delays.failures == 0 { log("Redis unavailable while \(what): \(error.message); waiting for it") }
                let delay = min(delays.recordFailure(), deadline - clock.now)
                do { try await Task.sleep(for: delay) } catch { throw ExperimentError(.timeout, "\(what): cancelled while waiting for Redis", cause: error) }
            }
        }
    }
}

import Durations

/// Capped exponential back-off with jitter, as a plain state machine.
///
/// It holds no clock and no timer: the owner asks it what to do after each failure and when
/// the next attempt is due, which makes it testable without servers or sleeps.
public struct ReconnectBackoff: Sendable {
    /// The shape of the back-off curve.
    public struct Policy: Sendable, Equatable {
        /// Delay after the first failure.
        public var initialDelay: Duration
        /// No delay is ever longer than this.
        public var maximumDelay: Duration
        /// Growth factor per consecutive failure.
        public var multiplier: Double
        /// Fraction of the delay randomised (0.2 = ±20 %), so many clients do not reconnect in step.
        public var jitter: Double

        public init(initialDelay: Duration = .milliseconds(50), maximumDelay: Duration = .seconds(2), multiplier: Double = 2, jitter: Double = 0.2) {
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
            self.multiplier = multiplier
            self.jitter = min(max(jitter, 0), 1)
        }
    }

    public let policy: Policy
    /// Consecutive failures since the last success.
    public private(set) var failures: Int = 0

    public init(policy: Policy) {
        self.policy = policy
    }

    /// Records a failed attempt and returns how long to wait before the next one.
    /// `random` is a value in 0..<1 (injected so tests are deterministic).
    public mutating func recordFailure(random: Double = Double.random(in: 0..<1)) -> Duration {
        failures += 1
        let base = policy.initialDelay.inSeconds * pow(policy.multiplier, Double(failures - 1))
        let capped = min(base, policy.maximumDelay.inSeconds)
        let factor = 1 + policy.jitter * (2 * random - 1)
        let delay = min(capped * factor, policy.maximumDelay.inSeconds)
        return .nanoseconds(Int64(max(delay, 0) * 1e9))
    }

    /// Records a successful attempt: the next failure starts from the initial delay again.
    public mutating func recordSuccess() {
        failures = 0
    }

    private func pow(_ base: Double, _ exponent: Double) -> Double {
        var result = 1.0
        var n = Int(exponent)
        while n > 0 { result *= base; n -= 1; if result > 1e12 { break } }
        return result
    }
}

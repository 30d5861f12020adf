import Durations

/// A token bucket: `rate` tokens per second up to `burst`; each admitted event takes one.
public struct TokenBucket: Sendable {
    public var rate: Double
    public var burst: Double
    private var tokens: Double
    private var last: ContinuousClock.Instant?

    public init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = max(burst, 1)
        tokens = self.burst
    }

    /// Takes a token when one is available at `now`.
    public mutating func take(now: ContinuousClock.Instant = .now) -> Bool {
        if let last {
            let elapsed = now - last
            tokens = min(burst, tokens + elapsed.inSeconds * rate)
        }
        last = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}

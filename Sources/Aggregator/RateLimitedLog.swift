import Logging
import Synchronization

/// Logs at most `burst` lines per key and interval, then one summary of what was suppressed,
/// so a flood of bad input cannot flood the log.
final class RateLimitedLog: Sendable {
    private struct Window { var start: ContinuousClock.Instant; var count: Int; var suppressed: Int }
    private let windows = Mutex<[String: Window]>([:])
    private let interval: Duration
    private let burst: Int
    let logger: Logger

    init(logger: Logger, interval: Duration = .seconds(10), burst: Int = 5) {
        self.logger = logger
        self.interval = interval
        self.burst = burst
    }

    func log(_ level: Logger.Level, key: String, _ message: @autoclosure () -> Logger.Message, metadata: Logger.Metadata = [:]) {
        let now = ContinuousClock.now
        let (emit, suppressed) = windows.withLock { windows -> (Bool, Int) in
            var window = windows[key] ?? Window(start: now, count: 0, suppressed: 0)
            var reported = 0
            if now - window.start >= interval {
                reported = window.suppressed
                window = Window(start: now, count: 0, suppressed: 0)
            }
            window.count += 1
            let emit = window.count <= burst
            if !emit { window.suppressed += 1 }
            windows[key] = window
            return (emit, reported)
        }
        if suppressed > 0 {
            logger.log(level: level, "\(suppressed) similar messages suppressed", metadata: ["kind": "\(key)"])
        }
        if emit { logger.log(level: level, message(), metadata: metadata) }
    }
}

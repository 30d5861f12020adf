import Foundation
import Synchronization
import Durations

/// A thread that runs a piece of work every `interval` until stopped: blocking clean-up
/// (`malloc_trim` takes milliseconds) never runs on the service thread or Swift's pool.
final class Housekeeper: Sendable {
    private let stopped = DispatchSemaphore(value: 0)
    private let stopOnce = Mutex(false)

    init(interval: Duration, work: @escaping @Sendable () -> Void) {
        let nanoseconds = Int(interval.wholeNanoseconds)
        let thread = Thread { [stopped] in
            while stopped.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .timedOut { work() }
        }
        thread.name = "gateway-housekeeping"
        thread.start()
    }

    /// Stops the thread: it ends after the work in progress, if any. Never blocks the caller
    /// (an async `stop` must not hold one of Swift's few cooperative threads). Later calls do
    /// nothing.
    func stop() {
        let first = stopOnce.withLock { done -> Bool in
            defer { done = true }
            return !done
        }
        guard first else { return }
        stopped.signal()
    }
}

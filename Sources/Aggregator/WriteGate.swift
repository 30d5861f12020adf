import Durations
import Foundation
import Synchronization

/// Lets a partition revoke (on the consumer's poll thread) wait for the write transaction in
/// flight, which stores its batch's offsets when it succeeds.
final class WriteGate: Sendable {
    private let current = Mutex<DispatchSemaphore?>(nil)

    /// How a wait ended.
    enum Wait: Sendable, Equatable {
        /// No write was ever started: nothing to wait for.
        case noWrite
        /// The latest write has finished (at once when it already had).
        case finished
        /// The latest write was still running when the timeout passed.
        case timedOut
    }

    /// Marks a write as started; signal the returned semaphore when it has finished.
    func begin() -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        current.withLock { $0 = done }
        return done
    }

    /// Waits up to `timeout` for the latest write to finish. Blocks: call it from the consumer's
    /// poll thread (or another thread of its own), never from Swift's cooperative pool.
    @discardableResult
    func waitForCurrent(timeout: Duration) -> Wait {
        guard let done = current.withLock({ $0 }) else { return .noWrite }
        guard done.wait(timeout: .now() + .nanoseconds(Int(timeout.wholeNanoseconds))) == .success else { return .timedOut }
        done.signal() // stays open for any later waiter
        return .finished
    }
}

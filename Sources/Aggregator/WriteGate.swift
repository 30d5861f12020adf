import Foundation
import Synchronization

/// Lets a partition revoke (on the consumer's poll thread) wait for the write transaction in
/// flight, which stores its batch's offsets when it succeeds.
final class WriteGate: Sendable {
    private let current = Mutex<DispatchSemaphore?>(nil)

    /// Marks a write as started; signal the returned semaphore when it has finished.
    func begin() -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        current.withLock { $0 = done }
        return done
    }

    /// Waits up to `timeout` for the latest write to finish (at once when it already has).
    func waitForCurrent(timeout: Duration) {
        guard let done = current.withLock({ $0 }) else { return }
        let nanoseconds = Int(timeout.components.seconds) * 1_000_000_000 + Int(timeout.components.attoseconds / 1_000_000_000)
        if done.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success {
            done.signal() // stays open for any later waiter
        }
    }
}

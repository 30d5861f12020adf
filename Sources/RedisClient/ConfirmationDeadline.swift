import Synchronization

/// How a subscription change ended when its confirmation was awaited with a deadline.
public enum ConfirmationOutcome: Sendable {
    case done
    /// The subscriber was closed meanwhile.
    case closed
    case failed(RedisError)
    /// The deadline passed first; the change itself goes on (a subscriber holds what it was
    /// asked for and sends it again on its next connection).
    case timedOut
}

/// Runs `change` (a subscribe or unsubscribe that returns once the server confirmed it), but
/// returns after `timeout` even if it has not finished: the one way the product bounds a wait
/// for pub/sub confirmations, whose server may be gone.
public func awaitConfirmation(within timeout: Duration, _ change: @escaping @Sendable () async throws(RedisError) -> Void) async -> ConfirmationOutcome {
    let once = Mutex<CheckedContinuation<ConfirmationOutcome, Never>?>(nil)
    return await withCheckedContinuation { continuation in
        once.withLock { $0 = continuation }
        let finish: @Sendable (ConfirmationOutcome) -> Void = { outcome in
            once.withLock { waiting in
                waiting?.resume(returning: outcome)
                waiting = nil
            }
        }
        let timer = Task {
            do {
                try await Task.sleep(for: timeout)
                finish(.timedOut)
            } catch {
                // Cancelled: the change finished first.
            }
        }
        Task {
            do throws(RedisError) {
                try await change()
                finish(.done)
            } catch {
                if case .closed = error.kind { finish(.closed) } else { finish(.failed(error)) }
            }
            timer.cancel()
        }
    }
}

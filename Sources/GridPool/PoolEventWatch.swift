import Foundation
import Regression
public import RedisClient
import Synchronization
import Backoff

/// Follows the pool's event channel so that `status` and `results --wait` react to a task's or a
/// job's change at once instead of at their next poll. Pub/sub is fire-and-forget (an event sent
/// while the subscriber reconnects is lost), so callers still poll on a timer: an event only cuts
/// their wait short.
public final class PoolEventWatch: Sendable {
    private struct State {
        /// An event arrived since the last wait ended.
        var pending = false
        var waiter: FirstResult<Void>?
        /// The last messages read: their job, and whether they woke the watch (for tests).
        var recent: [(job: String?, woke: Bool)] = []
    }

    private let subscriber: RedisSubscriber
    private let state = Mutex(State())
    private let reader = Mutex<Task<Void, Never>?>(nil)

    /// Which events wake a waiter.
    public enum Wake: Sendable {
        /// Every event (of the watched job).
        case everyEvent
        /// Only a job's completion.
        case completion
    }

    /// Watches the events of `job` (every job's when nil) on `configuration`'s Redis; `wake`
    /// says which of them end a wait. The subscription ends with `close()` or when the watch
    /// is released.
    public init(configuration: RedisConfiguration, keys: PoolKeys, job: String?, wake: Wake = .everyEvent) {
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: configuration, bufferCapacity: 64)
        self.subscriber = subscriber
        let channel = keys.events
        reader.withLock {
            $0 = Task { [weak self] in
                // Not awaited by the caller: while Redis is away the watch simply stays quiet
                // (the subscriber subscribes again once it reconnects). A subscribe that fails
                // (no descriptor for the wake pipe) is tried again after the back-off; a closed
                // subscriber ends the watch.
                var pauses = ReconnectBackoff(policy: .init(initialDelay: .milliseconds(100), maximumDelay: .seconds(5)))
                while true {
                    do throws(RedisError) {
                        try await subscriber.subscribe([channel])
                        break
                    } catch where error.kind == .closed {
                        return
                    } catch {
                        await PoolStop.sleep(pauses.recordFailure())
                        if Task.isCancelled { return }
                    }
                }
                for await event in events {
                    guard let self else { break } // released: the subscriber goes with this task
                    guard case .message(let message) = event else { continue }
                    // A message that is no pool event wakes nobody (it is still listed in `recent`).
                    let decoded: PoolEvent?
                    do throws(ExperimentError) { decoded = try PoolJSON.decode(PoolEvent.self, from: message.payload, "a message on \(channel)") } catch { decoded = nil }
                    let matches = decoded.map { (job == nil || $0.job == job) && (wake == .everyEvent || $0.isCompletion) } ?? false
                    self.state.withLock { state in
                        if state.recent.count == 16 { state.recent.removeFirst() }
                        state.recent.append((decoded?.job, matches))
                    }
                    if matches { self.ring() }
                }
            }
        }
    }

    /// A watch released without `close()` still ends its subscription, also one still waiting
    /// for an unreachable Redis (closing fails the pending subscribe).
    deinit {
        reader.withLock { $0?.cancel() }
        let subscriber = self.subscriber
        Task { await subscriber.close() }
    }

    /// Ends at the first event since the previous wait, or after `timeout`.
    public func wait(atMost timeout: Duration) async {
        let first = FirstResult<Void>()
        let ready = state.withLock { state -> Bool in
            if state.pending {
                state.pending = false
                return true
            }
            state.waiter = first
            return false
        }
        if ready { return }
        let timer = Task {
            await PoolStop.sleep(timeout)
            first.resume(())
        }
        await first.value()
        timer.cancel()
        state.withLock { state in
            if state.waiter === first { state.waiter = nil }
        }
    }

    /// The last 16 messages read: their job, and whether they woke the watch.
    var recent: [(job: String?, woke: Bool)] { state.withLock { $0.recent } }

    /// Unsubscribes and closes the connection.
    public func close() async {
        await subscriber.close()
        let task = reader.withLock { $0 }
        await task?.value
    }

    private func ring() {
        let waiter = state.withLock { state -> FirstResult<Void>? in
            guard let waiter = state.waiter else {
                state.pending = true
                return nil
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume(())
    }
}

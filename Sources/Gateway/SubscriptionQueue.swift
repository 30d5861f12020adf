import Logging
import RedisClient
import Synchronization

/// Applies channel and pattern (un)subscriptions to the Redis subscriber strictly in the order
/// the hub asked for them, one at a time, so a quick unsubscribe/subscribe of one camera can
/// never end up reversed.
///
/// `barrier()` returns once everything queued before it is confirmed by Redis: a history or
/// snapshot read after the barrier cannot miss a result that the live stream will not bring.
final class SubscriptionQueue: Sendable {
    private enum Operation: Sendable {
        case subscribe(String)
        case unsubscribe(String)
        case psubscribe(String)
        case punsubscribe(String)
        case barrier(CheckedContinuation<Void, Never>)
    }

    private let continuation: AsyncStream<Operation>.Continuation
    private let worker: Task<Void, Never>
    /// Set by `finish()`: what is still queued is drained without applying changes, so every
    /// barrier is answered.
    private let finishing: Finishing

    private final class Finishing: Sendable {
        let flag = Mutex(false)
        /// Barriers queued and not answered yet.
        let barriers = Mutex(0)
    }

    /// Barriers queued and not answered yet (callers waiting in `barrier()`).
    var pendingBarriers: Int { finishing.barriers.withLock { $0 } }

    /// How long one change may wait for its confirmation before the queue moves on. While Redis
    /// is down a change waits for the reconnect (the subscriber re-subscribes what it holds); a
    /// confirmation lost with a broken connection must not stall every later change.
    static let confirmationTimeout: Duration = .seconds(10)

    init(subscriber: RedisSubscriber, logger: Logger, confirmationTimeout: Duration = SubscriptionQueue.confirmationTimeout) {
        let (stream, continuation) = AsyncStream<Operation>.makeStream()
        self.continuation = continuation
        let finishing = Finishing()
        self.finishing = finishing
        worker = Task {
            for await operation in stream {
                if finishing.flag.withLock({ $0 }) {
                    if case .barrier(let waiter) = operation {
                        finishing.barriers.withLock { $0 -= 1 }
                        waiter.resume()
                    }
                    continue
                }
                let change: (@Sendable () async throws(RedisError) -> Void)?
                switch operation {
                case .subscribe(let channel): change = { () async throws(RedisError) in try await subscriber.subscribe([channel]) }
                case .unsubscribe(let channel): change = { () async throws(RedisError) in try await subscriber.unsubscribe([channel]) }
                case .psubscribe(let pattern): change = { () async throws(RedisError) in try await subscriber.psubscribe([pattern]) }
                case .punsubscribe(let pattern): change = { () async throws(RedisError) in try await subscriber.punsubscribe([pattern]) }
                case .barrier(let waiter):
                    finishing.barriers.withLock { $0 -= 1 }
                    waiter.resume()
                    change = nil
                }
                guard let change else { continue }
                switch await Self.withTimeout(confirmationTimeout, change) {
                case .done, .closed: break
                case .failed(let error): logger.warning("pub/sub subscription change failed", metadata: ["error": "\(error)"])
                case .timedOut: logger.warning("pub/sub subscription change not confirmed in time; moving on (it is re-sent on reconnect)")
                }
            }
        }
    }

    private enum Outcome: Sendable { case done, closed, failed(RedisError), timedOut }

    /// Runs `change`, but returns after `timeout` even if it has not finished (it keeps running).
    private static func withTimeout(_ timeout: Duration, _ change: @escaping @Sendable () async throws(RedisError) -> Void) async -> Outcome {
        let once = Mutex<CheckedContinuation<Outcome, Never>?>(nil)
        return await withCheckedContinuation { continuation in
            once.withLock { $0 = continuation }
            let finish: @Sendable (Outcome) -> Void = { outcome in
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

    func subscribe(_ channel: String) { continuation.yield(.subscribe(channel)) }
    func unsubscribe(_ channel: String) { continuation.yield(.unsubscribe(channel)) }
    func psubscribe(_ pattern: String) { continuation.yield(.psubscribe(pattern)) }
    func punsubscribe(_ pattern: String) { continuation.yield(.punsubscribe(pattern)) }

    /// Waits until every change queued so far is confirmed.
    func barrier() async {
        await withCheckedContinuation { (waiter: CheckedContinuation<Void, Never>) in
            finishing.barriers.withLock { $0 += 1 }
            if case .terminated = continuation.yield(.barrier(waiter)) {
                finishing.barriers.withLock { $0 -= 1 }
                waiter.resume()
            }
        }
    }

    /// Ends the queue: changes still queued are dropped, barriers still queued are answered
    /// (the worker drains the stream; cancelling it would leave them waiting forever).
    func finish() {
        finishing.flag.withLock { $0 = true }
        continuation.finish()
    }
}

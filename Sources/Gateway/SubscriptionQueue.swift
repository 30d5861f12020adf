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

    /// How long one change may wait for its confirmation before the queue moves on. While Redis
    /// is down a change waits for the reconnect (the subscriber re-subscribes what it holds); a
    /// confirmation lost with a broken connection must not stall every later change.
    static let confirmationTimeout: Duration = .seconds(10)

    init(subscriber: RedisSubscriber, logger: Logger) {
        let (stream, continuation) = AsyncStream<Operation>.makeStream()
        self.continuation = continuation
        worker = Task {
            for await operation in stream {
                let change: (@Sendable () async throws(RedisError) -> Void)?
                switch operation {
                case .subscribe(let channel): change = { () async throws(RedisError) in try await subscriber.subscribe([channel]) }
                case .unsubscribe(let channel): change = { () async throws(RedisError) in try await subscriber.unsubscribe([channel]) }
                case .psubscribe(let pattern): change = { () async throws(RedisError) in try await subscriber.psubscribe([pattern]) }
                case .punsubscribe(let pattern): change = { () async throws(RedisError) in try await subscriber.punsubscribe([pattern]) }
                case .barrier(let waiter):
                    waiter.resume()
                    change = nil
                }
                guard let change else { continue }
                switch await Self.withTimeout(Self.confirmationTimeout, change) {
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
                try? await Task.sleep(for: timeout)
                finish(.timedOut)
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
            if case .terminated = continuation.yield(.barrier(waiter)) { waiter.resume() }
        }
    }

    func finish() {
        continuation.finish()
        worker.cancel()
    }
}

import Logging
import RedisClient

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

    init(subscriber: RedisSubscriber, logger: Logger) {
        let (stream, continuation) = AsyncStream<Operation>.makeStream()
        self.continuation = continuation
        worker = Task {
            for await operation in stream {
                do {
                    switch operation {
                    case .subscribe(let channel): try await subscriber.subscribe([channel])
                    case .unsubscribe(let channel): try await subscriber.unsubscribe([channel])
                    case .psubscribe(let pattern): try await subscriber.psubscribe([pattern])
                    case .punsubscribe(let pattern): try await subscriber.punsubscribe([pattern])
                    case .barrier(let waiter): waiter.resume()
                    }
                } catch let error as RedisError {
                    if case .closed = error.kind { continue } // shutting down
                    logger.warning("pub/sub subscription change failed", metadata: ["error": "\(error)"])
                } catch {
                    logger.warning("pub/sub subscription change failed", metadata: ["error": "\(error)"])
                }
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

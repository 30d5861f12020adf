import Logging
import RedisClient
import Synchronization

/// Applies channel and "every camera" (un)subscriptions to the live channels strictly in the
/// order the hub asked for them, one at a time, so a quick unsubscribe/subscribe of one camera
/// can never end up reversed. On a cluster, the periodic look for new cameras goes through the
/// same queue.
///
/// `barrier()` returns once everything queued before it is confirmed by Redis: a history or
/// snapshot read after the barrier cannot miss a result that the live stream will not bring.
final class SubscriptionQueue: Sendable {
    private enum Operation: Sendable {
        case subscribe(String)
        case unsubscribe(String)
        case subscribeAll
        case unsubscribeAll
        case discover
        case appeared([Int])
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

    init(channels: any LiveChannels, logger: Logger, confirmationTimeout: Duration = SubscriptionQueue.confirmationTimeout) {
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
                case .subscribe(let channel): change = { () async throws(RedisError) in try await channels.subscribe(channel) }
                case .unsubscribe(let channel): change = { () async throws(RedisError) in try await channels.unsubscribe(channel) }
                case .subscribeAll: change = { () async throws(RedisError) in try await channels.subscribeAll() }
                case .unsubscribeAll: change = { () async throws(RedisError) in try await channels.unsubscribeAll() }
                case .discover: change = { () async throws(RedisError) in await channels.discover() }
                case .appeared(let cameras): change = { () async throws(RedisError) in await channels.appeared(cameras) }
                case .barrier(let waiter):
                    finishing.barriers.withLock { $0 -= 1 }
                    waiter.resume()
                    change = nil
                }
                guard let change else { continue }
                switch await awaitConfirmation(within: confirmationTimeout, change) {
                case .done, .closed: break
                case .failed(let error): logger.warning("pub/sub subscription change failed", metadata: ["error": "\(error)"])
                case .timedOut: logger.warning("pub/sub subscription change not confirmed in time; moving on (it is re-sent on reconnect)")
                }
            }
        }
    }

    func subscribe(_ channel: String) { continuation.yield(.subscribe(channel)) }
    func unsubscribe(_ channel: String) { continuation.yield(.unsubscribe(channel)) }
    func subscribeAll() { continuation.yield(.subscribeAll) }
    func unsubscribeAll() { continuation.yield(.unsubscribeAll) }
    /// Looks for new cameras (a cluster's "every camera"); a no-op elsewhere.
    func discover() { continuation.yield(.discover) }
    /// Cameras the aggregator announced (a cluster's "every camera"); a no-op elsewhere.
    func appeared(_ cameras: [Int]) { continuation.yield(.appeared(cameras)) }

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

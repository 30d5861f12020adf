import CHiredis
import Foundation
public import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A pub/sub connection with a thread of its own.
///
/// The thread blocks in `poll(2)` on the Redis socket and a wake-up pipe, so subscribe requests
/// from any task reach the connection without racing its reads. Messages go to the handler
/// given at creation, **called on the subscriber's thread** (keep it short, never block in it),
/// or through the bounded `AsyncStream` of `makeStream`. After a lost connection it reconnects
/// with the configuration's back-off and re-subscribes every channel and pattern it holds.
///
/// `RedisSubscriber` is `Sendable`; all its methods may be called from any thread or task.
public final class RedisSubscriber: Sendable {
    let shared: SubscriberShared

    /// Creates the subscriber and starts its thread; the handler sees every event in order.
    public convenience init(configuration: RedisConfiguration, logger: Logger = Logger(label: "redis.subscriber"), handler: @escaping @Sendable (RedisSubscriberEvent) -> Void) {
        self.init(configuration: configuration, logger: logger, handler: handler, onClose: nil, dropCounter: nil)
    }

    /// Everything the thread reads is set before it starts.
    init(configuration: RedisConfiguration, logger: Logger, handler: @escaping @Sendable (RedisSubscriberEvent) -> Void,
         onClose: (@Sendable () -> Void)?, dropCounter: (@Sendable () -> Int)?) {
        var fds: [Int32] = [-1, -1]
        let ok = pipe(&fds) == 0
        precondition(ok, "pipe(2) failed: \(String(cString: strerror(errno)))")
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC) // children must not hold it
        }
        shared = SubscriberShared(configuration: configuration, logger: logger, handler: handler, wakeRead: fds[0], wakeWrite: fds[1], onClose: onClose, dropCounter: dropCounter)
        // The loop is made on its thread and never leaves it: its state (connection, waiter
        // book, back-off) is confined there by construction, not by convention.
        let shared = self.shared
        let thread = Thread { SubscriberLoop(shared: shared).run() }
        thread.name = "redis-subscriber"
        thread.start()
    }

    /// A subscriber dropped without `close()` still ends its thread, connection and pipe (and
    /// fails its pending requests); it just does not wait for that.
    deinit {
        shared.state.withLock { state in
            guard !state.finished else { return }
            state.closing = true
            shared.wake(state)
        }
    }

    /// Creates a subscriber whose events arrive through a bounded `AsyncStream`.
    /// When the reader falls behind by `bufferCapacity` events, `overflow` decides what is
    /// dropped; `droppedEvents` counts them.
    public static func makeStream(configuration: RedisConfiguration, bufferCapacity: Int = 10_000, overflow: RedisOverflowPolicy = .dropOldest, logger: Logger = Logger(label: "redis.subscriber")) -> (RedisSubscriber, AsyncStream<RedisSubscriberEvent>) {
        let policy: AsyncStream<RedisSubscriberEvent>.Continuation.BufferingPolicy = switch overflow {
        case .dropOldest: .bufferingNewest(bufferCapacity)
        case .dropNewest: .bufferingOldest(bufferCapacity)
        }
        let (stream, continuation) = AsyncStream<RedisSubscriberEvent>.makeStream(bufferingPolicy: policy)
        let drops = Mutex(0)
        let subscriber = RedisSubscriber(configuration: configuration, logger: logger, handler: { event in
            if case .dropped = continuation.yield(event) { drops.withLock { $0 += 1 } }
        }, onClose: { continuation.finish() }, dropCounter: { drops.withLock { $0 } })
        return (subscriber, stream)
    }

    /// Events the bounded stream of `makeStream` dropped because its reader was behind.
    public var droppedEvents: Int { shared.dropCounter?() ?? 0 }

    /// Subscribes to channels and returns once the server confirmed each of them.
    /// While Redis is unreachable this waits until it is back (wrap it in a timeout if needed).
    public func subscribe(_ channels: [String]) async throws(RedisError) {
        try await request(.subscribe, channels)
    }

    /// Subscribes to glob patterns (`camera:*`) and returns once each is confirmed.
    public func psubscribe(_ patterns: [String]) async throws(RedisError) {
        try await request(.psubscribe, patterns)
    }

    /// Stops delivery from channels; returns once the server confirmed each of them.
    public func unsubscribe(_ channels: [String]) async throws(RedisError) {
        try await request(.unsubscribe, channels)
    }

    /// Stops delivery from patterns; returns once the server confirmed each of them.
    public func punsubscribe(_ patterns: [String]) async throws(RedisError) {
        try await request(.punsubscribe, patterns)
    }

    /// The channels and patterns currently held (re-subscribed after a reconnect).
    public var subscriptions: (channels: Set<String>, patterns: Set<String>) {
        shared.state.withLock { ($0.channels, $0.patterns) }
    }

    /// Stops the thread and closes the connection; pending requests fail with `.closed`.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let alreadyDone = shared.state.withLock { state -> Bool in
                if state.finished { return true }
                state.closing = true
                state.closeWaiters.append(continuation)
                shared.wake(state)
                return false
            }
            if alreadyDone { continuation.resume() }
        }
    }

    private func request(_ kind: SubscriptionKind, _ names: [String]) async throws(RedisError) {
        if names.isEmpty { return }
        let result: Result<Void, RedisError> = await withCheckedContinuation { continuation in
            let rejected = shared.state.withLock { state -> Bool in
                if state.closing || state.finished { return true }
                state.inbox.append(SubscriptionRequest(kind: kind, names: names, waiter: ConfirmationWaiter(remaining: Set(names), adds: kind.adds, continuation: continuation)))
                shared.wake(state)
                return false
            }
            if rejected {
                continuation.resume(returning: .failure(RedisError(kind: .closed, message: "the subscriber was closed")))
            }
        }
        try result.get()
    }
}

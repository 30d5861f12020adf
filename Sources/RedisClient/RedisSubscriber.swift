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
    /// A process out of file descriptors cannot start the thread (it needs a wake-up pipe):
    /// then `subscribe` throws `.resourceUnavailable`, and each later call tries again.
    public convenience init(configuration: RedisConfiguration, logger: Logger = Logger(label: "redis.subscriber"), handler: @escaping @Sendable (RedisSubscriberEvent) -> Void) {
        self.init(configuration: configuration, logger: logger, handler: handler, onClose: nil, dropCounter: nil)
    }

    /// Everything the thread reads is set before it starts. `channels` are held from the start
    /// (subscribed on every connect, no caller waiting); `makeWakePipe` is a seam for tests.
    init(configuration: RedisConfiguration, logger: Logger = Logger(label: "redis.subscriber"), handler: @escaping @Sendable (RedisSubscriberEvent) -> Void,
         onClose: (@Sendable () -> Void)?, dropCounter: (@Sendable () -> Int)?, holding channels: Set<String> = [],
         threadName: String = "redis-subscriber", makeWakePipe: @escaping @Sendable () -> Result<WakePipe, RedisError> = WakePipe.make) {
        shared = SubscriberShared(configuration: configuration, logger: logger, handler: handler, onClose: onClose, dropCounter: dropCounter,
                                  holding: channels, makeWakePipe: makeWakePipe, threadName: threadName)
        if let error = startIfNeeded() {
            logger.warning("Redis subscriber cannot start; subscribing tries again", metadata: ["redis": "\(configuration)", "error": "\(error)"])
        }
    }

    /// Starts the thread unless it runs (or ran): nil when it does, else why it cannot.
    private func startIfNeeded() -> RedisError? {
        let shared = self.shared
        let started: Result<WakePipe?, RedisError> = shared.state.withLock { state in
            if state.wake != nil || state.closing || state.finished { return .success(nil) }
            switch shared.makeWakePipe() {
            case .success(let pipe):
                state.wake = pipe
                return .success(pipe)
            case .failure(let error):
                return .failure(error)
            }
        }
        switch started {
        case .success(let pipe?):
            // The loop is made on its thread and never leaves it: its state (connection, waiter
            // book, back-off) is confined there by construction, not by convention.
            let thread = Thread {
                // Named through the kernel: Foundation's `Thread.name` reaches the OS thread
                // only when its bookkeeping has caught up with the new thread, which a busy machine
                // loses (the name of the watch threads is what tests and `top -H` see).
                nameCurrentThread(shared.threadName)
                SubscriberLoop(shared: shared, wakeRead: pipe.read).run()
            }
            thread.start()
            return nil
        case .success(nil):
            return nil
        case .failure(let error):
            return error
        }
    }

    /// A subscriber dropped without `close()` still ends its thread, connection and pipe (and
    /// fails its pending requests); it just does not wait for that.
    deinit {
        if endUnstarted(nil) == .waitForThread {
            shared.state.withLock { state in
                guard !state.finished else { return }
                state.closing = true
                shared.wake(state)
            }
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

    /// Subscribes to shard channels of a Redis Cluster node (`SSUBSCRIBE`, one command per hash
    /// slot) and returns once each is confirmed. A node that does not serve a channel's slot
    /// refuses it: that throws (`MOVED …`), the channel is not held, and the handler hears
    /// `.shardChannelsLost`. `RedisShardedSubscriber` places channels on the right nodes.
    public func ssubscribe(_ channels: [String]) async throws(RedisError) {
        try await request(.ssubscribe, channels)
    }

    /// Stops delivery from shard channels; returns once the server confirmed each of them.
    public func sunsubscribe(_ channels: [String]) async throws(RedisError) {
        try await request(.sunsubscribe, channels)
    }

    /// The channels and patterns currently held (re-subscribed after a reconnect).
    public var subscriptions: (channels: Set<String>, patterns: Set<String>) {
        shared.state.withLock { ($0.channels, $0.patterns) }
    }

    /// The shard channels currently held (re-subscribed after a reconnect).
    public var shardChannels: Set<String> {
        shared.state.withLock { $0.shardChannels }
    }

    /// Stops the thread and closes the connection (and, for a Sentinel endpoint, the watch on
    /// the sentinels); pending requests fail with `.closed`. Returns once they are gone.
    public func close() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            guard endUnstarted(continuation) == .waitForThread else { return }
            let alreadyDone = shared.state.withLock { state -> Bool in
                if state.finished { return true }
                state.closing = true
                state.closeWaiters.append(continuation)
                shared.wake(state)
                return false
            }
            if alreadyDone { continuation.resume() }
        }
        await shared.watch?.close()
    }

    private enum Ending { case done, waitForThread }

    /// Ends a subscriber whose thread never started (no pipe could be made) at once; resumes
    /// `continuation` then. `.waitForThread` when the thread runs (or ran), so ending it is
    /// the thread's job.
    private func endUnstarted(_ continuation: CheckedContinuation<Void, Never>?) -> Ending {
        let ended = shared.state.withLock { state -> Bool in
            // No wake pipe and not finished: the thread never started (and so nothing was
            // queued: requests are queued only once it runs).
            guard state.wake == nil, !state.finished else { return false }
            state.closing = true
            state.finished = true
            return true
        }
        guard ended else { return .waitForThread }
        shared.onClose?()
        continuation?.resume()
        return .done
    }

    private func request(_ kind: SubscriptionKind, _ names: [String]) async throws(RedisError) {
        if names.isEmpty { return }
        if let error = startIfNeeded() { throw error }
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

/// Names the calling thread as the kernel shows it (`/proc/<pid>/task/<tid>/comm`, 15 bytes at
/// most). Glibc's `pthread_setname_np` is not visible to Swift; writing the thread's own `comm`
/// is the same call.
private func nameCurrentThread(_ name: String) {
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return } // no /proc: the thread keeps its inherited name
    defer { close(fd) }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } // a refused name changes nothing else
}

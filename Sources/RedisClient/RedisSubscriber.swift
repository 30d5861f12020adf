import CHiredis
import Foundation
public import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A message received on a subscribed channel or pattern.
public struct RedisPubSubMessage: Sendable, Hashable {
    /// The channel the message was published to.
    public var channel: String
    /// The pattern that matched, for `PSUBSCRIBE` deliveries.
    public var pattern: String?
    public var payload: [UInt8]
}

/// What a `RedisSubscriber` reports.
public enum RedisSubscriberEvent: Sendable, Hashable {
    case message(RedisPubSubMessage)
    /// The server confirmed a SUBSCRIBE (or PSUBSCRIBE when `pattern`).
    case subscribed(String, pattern: Bool)
    /// The server confirmed an UNSUBSCRIBE (or PUNSUBSCRIBE).
    case unsubscribed(String, pattern: Bool)
    /// The connection broke; messages published until `reconnected` are lost (pub/sub has no
    /// history). The subscriber keeps retrying with back-off.
    case disconnected(String)
    /// Connected again and every channel and pattern was subscribed anew.
    case reconnected
}

/// What a bounded event buffer does when its reader falls behind.
public enum RedisOverflowPolicy: Sendable {
    /// Keep the newest events, drop the oldest buffered ones (live dashboards want this).
    case dropOldest
    /// Keep what is buffered, drop new events until there is room.
    case dropNewest
}

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
        let loop = SubscriberLoop(shared: shared)
        let thread = Thread { loop.run() }
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

enum SubscriptionKind: String {
    case subscribe, psubscribe, unsubscribe, punsubscribe

    var isPattern: Bool { self == .psubscribe || self == .punsubscribe }
    var adds: Bool { self == .subscribe || self == .psubscribe }
    var command: String { rawValue.uppercased() }
}

/// Someone waiting until the server confirmed every name of one request.
final class ConfirmationWaiter {
    var remaining: Set<String>
    /// Waits for a SUBSCRIBE/PSUBSCRIBE (not a removal).
    let adds: Bool
    let continuation: CheckedContinuation<Result<Void, RedisError>, Never>

    init(remaining: Set<String>, adds: Bool, continuation: CheckedContinuation<Result<Void, RedisError>, Never>) {
        self.remaining = remaining
        self.adds = adds
        self.continuation = continuation
    }

    /// The server confirmed `name` (or the confirmation is moot); resumes once all are.
    func resolve(_ name: String) {
        guard remaining.remove(name) != nil else { return }
        if remaining.isEmpty { continuation.resume(returning: .success(())) }
    }
}

struct SubscriptionRequest {
    let kind: SubscriptionKind
    let names: [String]
    let waiter: ConfirmationWaiter
}

/// State shared between callers and the subscriber thread, behind one lock.
struct SubscriberState {
    var inbox: [SubscriptionRequest] = []
    var channels: Set<String> = []
    var patterns: Set<String> = []
    var closing = false
    var finished = false
    var closeWaiters: [CheckedContinuation<Void, Never>] = []
}

/// What callers and the subscriber thread share; every mutable part is behind `state`'s lock.
final class SubscriberShared: Sendable {
    let configuration: RedisConfiguration
    let logger: Logger
    let handler: @Sendable (RedisSubscriberEvent) -> Void
    let wakeRead: Int32
    let wakeWrite: Int32
    let state = Mutex(SubscriberState())
    let onClose: (@Sendable () -> Void)?
    let dropCounter: (@Sendable () -> Int)?

    init(configuration: RedisConfiguration, logger: Logger, handler: @escaping @Sendable (RedisSubscriberEvent) -> Void, wakeRead: Int32, wakeWrite: Int32,
         onClose: (@Sendable () -> Void)?, dropCounter: (@Sendable () -> Int)?) {
        self.configuration = configuration
        self.logger = logger
        self.handler = handler
        self.wakeRead = wakeRead
        self.wakeWrite = wakeWrite
        self.onClose = onClose
        self.dropCounter = dropCounter
    }

    /// Wakes the thread. Takes the state as its lock holder passes it: `finish()`
    /// closes the pipe under the same lock, so a wake never writes to a closed or reused
    /// descriptor.
    func wake(_ state: borrowing SubscriberState) {
        guard !state.finished else { return }
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }
}

/// The body of the subscriber thread. Everything here runs on that one thread.
final class SubscriberLoop: @unchecked Sendable {
    let shared: SubscriberShared
    var connection: RedisConnection?
    var backoff: ReconnectBackoff
    /// Waiters per "c:name" / "p:name" until the server confirms that name.
    var waiting: [String: [ConfirmationWaiter]] = [:]
    var everConnected = false
    var reportedDown = false
    /// After a reconnect: the held names whose re-subscription the server has not confirmed
    /// yet; `.reconnected` is reported once it is empty.
    var resubscribing: Set<String>?

    init(shared: SubscriberShared) {
        self.shared = shared
        self.backoff = ReconnectBackoff(policy: shared.configuration.reconnect)
    }

    func run() {
        var pending: [SubscriptionRequest] = []
        while true {
            let (closing, requests) = shared.state.withLock { state -> (Bool, [SubscriptionRequest]) in
                // Once closing, requests stay in the inbox: `finish()` fails them there. (Taken
                // here they would be in neither place and their callers would wait forever.)
                if state.closing { return (true, []) }
                let taken = state.inbox
                state.inbox.removeAll()
                // The held sets change as requests are taken, so a reconnect re-subscribes them.
                for request in taken {
                    for name in request.names {
                        switch request.kind {
                        case .subscribe: state.channels.insert(name)
                        case .psubscribe: state.patterns.insert(name)
                        case .unsubscribe: state.channels.remove(name)
                        case .punsubscribe: state.patterns.remove(name)
                        }
                    }
                }
                return (false, taken)
            }
            if closing { break }
            for request in requests {
                for name in request.names {
                    waiting[key(request.kind.isPattern, name), default: []].append(request.waiter)
                }
            }
            pending += requests

            if connection == nil {
                guard connect() else { continue }
                // `connect` subscribed the held sets, which already include pending additions,
                // and settled every waiter that no reply will come for (pending removals too).
                pending.removeAll()
            }
            guard let connection else { continue }
            do {
                for request in pending {
                    var args = RedisArguments([request.kind.command])
                    for name in request.names { args.append(name) }
                    try connection.append(args)
                }
                pending.removeAll()
                try connection.flush()
                try waitAndRead(connection)
            } catch {
                dropConnection(error)
            }
        }
        finish()
    }

    /// Connects and re-subscribes; on failure waits out the back-off (interruptible).
    private func connect() -> Bool {
        do {
            let made = try RedisConnection(configuration: shared.configuration)
            // A pub/sub connection only waits for pushes: no command timeout on reads.
            made.withContextPointer { _ = redisSetTimeoutZero($0) }
            let (channels, patterns) = shared.state.withLock { ($0.channels, $0.patterns) }
            if !channels.isEmpty {
                var args = RedisArguments(["SUBSCRIBE"])
                for name in channels.sorted() { args.append(name) }
                try made.append(args)
            }
            if !patterns.isEmpty {
                var args = RedisArguments(["PSUBSCRIBE"])
                for name in patterns.sorted() { args.append(name) }
                try made.append(args)
            }
            try made.flush()
            connection = made
            backoff.recordSuccess()
            // Confirmations lost with the old connection: the new one holds exactly the held
            // sets, and the re-subscription just sent brings one reply per held name. So every
            // removal is done, a name no longer held needs nothing, and of the additions of a
            // held name the newest waits for that reply and any others are done now.
            let held = Set(channels.map { key(false, $0) } + patterns.map { key(true, $0) })
            for (name, waiters) in waiting {
                let bare = String(name.dropFirst(2))
                // The newest addition is the one its caller is still waiting on; older ones
                // were given up on or are superseded.
                let keep = held.contains(name) ? waiters.last(where: \.adds) : nil
                for waiter in waiters where waiter !== keep { waiter.resolve(bare) }
                waiting[name] = keep.map { [$0] }
            }
            if everConnected {
                shared.logger.info("Redis subscriber reconnected", metadata: ["redis": "\(shared.configuration)", "channels": "\(channels.count)", "patterns": "\(patterns.count)"])
                // Reported once every held name is subscribed again, so whoever reacts (reads
                // what was missed) cannot read before the subscription is live.
                resubscribing = held
                reportResubscribed()
            }
            everConnected = true
            reportedDown = false
            return true
        } catch {
            if !reportedDown {
                reportedDown = true
                shared.logger.warning("Redis subscriber cannot connect", metadata: ["error": "\(error)"])
                if everConnected { shared.handler(.disconnected(error.description)) }
            }
            let delay = backoff.recordFailure()
            pollWake(timeoutMs: Int32(ReconnectBackoff.seconds(delay) * 1000))
            return false
        }
    }

    private func dropConnection(_ error: RedisError) {
        connection = nil
        resubscribing = nil
        shared.logger.warning("Redis subscriber connection lost", metadata: ["error": "\(error.message)"])
        reportedDown = true
        shared.handler(.disconnected(error.description))
    }

    /// Blocks until the socket has data or someone wakes us, then handles complete replies.
    private func waitAndRead(_ connection: RedisConnection) throws(RedisError) {
        // Replies may already sit in hiredis' buffer from an earlier read.
        while let reply = try connection.bufferedReply() { handle(reply) }
        var fds = [
            pollfd(fd: connection.fileDescriptor, events: Int16(POLLIN), revents: 0),
            pollfd(fd: shared.wakeRead, events: Int16(POLLIN), revents: 0),
        ]
        let ready = poll(&fds, 2, 1000)
        if ready < 0 {
            if errno == EINTR { return }
            throw RedisError(kind: .connectionLost, message: "poll: \(String(cString: strerror(errno)))")
        }
        if fds[1].revents != 0 { drainWake() }
        if fds[0].revents != 0 {
            try connection.readAvailable()
            while let reply = try connection.bufferedReply() { handle(reply) }
        }
    }

    private func handle(_ reply: RedisReply) {
        guard case .array(let parts) = reply, let kind = parts.first?.string else { return }
        switch kind {
        case "message" where parts.count == 3:
            if let channel = parts[1].string, let payload = parts[2].bytes {
                shared.handler(.message(RedisPubSubMessage(channel: channel, pattern: nil, payload: payload)))
            }
        case "pmessage" where parts.count == 4:
            if let pattern = parts[1].string, let channel = parts[2].string, let payload = parts[3].bytes {
                shared.handler(.message(RedisPubSubMessage(channel: channel, pattern: pattern, payload: payload)))
            }
        case "subscribe", "psubscribe", "unsubscribe", "punsubscribe":
            guard parts.count >= 2, let name = parts[1].string else { return }
            let isPattern = kind.hasPrefix("p")
            confirm(isPattern, name)
            if resubscribing != nil, !kind.hasSuffix("unsubscribe") {
                resubscribing?.remove(key(isPattern, name))
                reportResubscribed()
            }
            shared.handler(kind.hasSuffix("unsubscribe") ? .unsubscribed(name, pattern: isPattern) : .subscribed(name, pattern: isPattern))
        default:
            break
        }
    }

    private func reportResubscribed() {
        guard let waiting = resubscribing, waiting.isEmpty else { return }
        resubscribing = nil
        shared.handler(.reconnected)
    }

    private func confirm(_ isPattern: Bool, _ name: String) {
        guard var waiters = waiting.removeValue(forKey: key(isPattern, name)), !waiters.isEmpty else { return }
        let waiter = waiters.removeFirst()
        if !waiters.isEmpty { waiting[key(isPattern, name)] = waiters }
        waiter.resolve(name)
    }

    private func key(_ isPattern: Bool, _ name: String) -> String {
        (isPattern ? "p:" : "c:") + name
    }

    private func pollWake(timeoutMs: Int32) {
        var fd = pollfd(fd: shared.wakeRead, events: Int16(POLLIN), revents: 0)
        if poll(&fd, 1, max(timeoutMs, 1)) > 0 { drainWake() }
    }

    private func drainWake() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(shared.wakeRead, &buffer, buffer.count) > 0 {}
    }

    private func finish() {
        connection = nil
        let closed = RedisError(kind: .closed, message: "the subscriber was closed")
        var resumed = Set<ObjectIdentifier>()
        for waiters in waiting.values {
            for waiter in waiters where resumed.insert(ObjectIdentifier(waiter)).inserted {
                waiter.continuation.resume(returning: .failure(closed))
            }
        }
        waiting.removeAll()
        let closeWaiters = shared.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.finished = true
            for request in state.inbox where resumed.insert(ObjectIdentifier(request.waiter)).inserted {
                request.waiter.continuation.resume(returning: .failure(closed))
            }
            state.inbox.removeAll()
            let waiters = state.closeWaiters
            state.closeWaiters.removeAll()
            // Under the lock that every wake holds: no wake can write after this.
            close(shared.wakeRead)
            close(shared.wakeWrite)
            return waiters
        }
        shared.onClose?()
        for waiter in closeWaiters { waiter.resume() }
    }
}

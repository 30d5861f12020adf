import CHiredis
import Durations
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
import Backoff
#endif

/// The body of the subscriber thread: the connection, the waiter book and the reconnect state.
/// Not `Sendable`: it is created on the subscriber thread and never leaves it, so the compiler
/// keeps every access there. Other threads reach it only through `SubscriberShared` (the
/// inbox under its lock and the wake pipe).
final class SubscriberLoop {
    let shared: SubscriberShared
    /// The read end of the wake-up pipe (the pipe is the loop's until `finish()` closes it).
    let wakeRead: Int32
    var connection: RedisConnection?
    var backoff: ReconnectBackoff
    /// Waiters per "c:name" / "p:name" / "s:name" until the server confirms that name.
    var waiting: [String: [ConfirmationWaiter]] = [:]
    var everConnected = false
    var reportedDown = false
    /// The sentinels' failover count when the connection was made.
    var connectedGeneration = 0
    /// After a reconnect: the held names whose re-subscription the server has not confirmed
    /// yet; `.reconnected` is reported once it is empty.
    var resubscribing: Set<String>?
    /// The `SSUBSCRIBE`/`SUNSUBSCRIBE` commands sent on this connection and not answered yet,
    /// oldest first: a cluster node answers one it refuses with a single error reply that names
    /// no channel, so the order tells which names it refused.
    var shardInFlight: [(kind: SubscriptionKind, names: Set<String>)] = []

    init(shared: SubscriberShared, wakeRead: Int32) {
        self.shared = shared
        self.wakeRead = wakeRead
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
                        case .ssubscribe: state.shardChannels.insert(name)
                        case .unsubscribe: state.channels.remove(name)
                        case .punsubscribe: state.patterns.remove(name)
                        case .sunsubscribe: state.shardChannels.remove(name)
                        }
                    }
                }
                return (false, taken)
            }
            if closing { break }
            if connection != nil, let watch = shared.watch, watch.generation != connectedGeneration {
                dropConnection(RedisError(kind: .connectionLost, message: "the sentinels switched the primary"))
            }
            for request in requests {
                for name in request.names {
                    waiting[request.kind.family.key(name), default: []].append(request.waiter)
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
                    try send(request.kind, request.names, on: connection)
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
            let generation = shared.watch?.generation ?? 0
            let made = try RedisConnection(configuration: shared.configuration)
            connectedGeneration = generation
            // A pub/sub connection only waits for pushes: no command timeout on reads.
            made.withContextPointer { _ = redisSetTimeoutZero($0) }
            let (channels, patterns, shardChannels) = shared.state.withLock { ($0.channels, $0.patterns, $0.shardChannels) }
            shardInFlight.removeAll()
            try send(.subscribe, channels.sorted(), on: made)
            try send(.psubscribe, patterns.sorted(), on: made)
            try send(.ssubscribe, shardChannels.sorted(), on: made)
            try made.flush()
            connection = made
            backoff.recordSuccess()
            // Confirmations lost with the old connection: the new one holds exactly the held
            // sets, and the re-subscription just sent brings one reply per held name. So every
            // removal is done, a name no longer held needs nothing, and of the additions of a
            // held name the newest waits for that reply and any others are done now.
            let held = Set(channels.map { SubscriptionFamily.channel.key($0) } + patterns.map { SubscriptionFamily.pattern.key($0) } + shardChannels.map { SubscriptionFamily.shard.key($0) })
            for (name, waiters) in waiting {
                let bare = String(name.dropFirst(2))
                // The newest addition is the one its caller is still waiting on; older ones
                // were given up on or are superseded.
                let keep = held.contains(name) ? waiters.last(where: \.adds) : nil
                for waiter in waiters where waiter !== keep { waiter.resolve(bare) }
                waiting[name] = keep.map { [$0] }
            }
            if everConnected {
                shared.logger.info("Redis subscriber reconnected", metadata: ["redis": "\(shared.configuration)", "channels": "\(channels.count + shardChannels.count)", "patterns": "\(patterns.count)"])
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
            pollWake(timeoutMs: Int32(clamping: delay.wholeMilliseconds))
            return false
        }
    }

    private func dropConnection(_ error: RedisError) {
        connection = nil
        resubscribing = nil
        shardInFlight.removeAll()
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
            pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
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

    /// Appends the command for `names` (none: nothing). Shard channels go one command per hash
    /// slot (a cluster refuses an `SSUBSCRIBE` whose channels span slots), each remembered until
    /// it is answered.
    private func send(_ kind: SubscriptionKind, _ names: [String], on connection: RedisConnection) throws(RedisError) {
        if names.isEmpty { return }
        guard kind.family == .shard else {
            try connection.append(RedisArguments(kind.command, names))
            return
        }
        var bySlot: [Int: [String]] = [:]
        for name in names { bySlot[HashSlot.of(name), default: []].append(name) }
        for slot in bySlot.keys.sorted() {
            let group = bySlot[slot]!
            try connection.append(RedisArguments(kind.command, group))
            shardInFlight.append((kind, Set(group)))
        }
    }

    private func handle(_ reply: RedisReply) {
        if case .error(let message) = reply {
            refused(message)
            return
        }
        guard case .array(let parts) = reply, let kind = parts.first?.string else { return }
        switch kind {
        case "message" where parts.count == 3, "smessage" where parts.count == 3:
            if let channel = parts[1].string, let payload = parts[2].bytes {
                shared.handler(.message(RedisPubSubMessage(channel: channel, pattern: nil, payload: payload)))
            }
        case "pmessage" where parts.count == 4:
            if let pattern = parts[1].string, let channel = parts[2].string, let payload = parts[3].bytes {
                shared.handler(.message(RedisPubSubMessage(channel: channel, pattern: pattern, payload: payload)))
            }
        case "subscribe", "psubscribe", "ssubscribe", "unsubscribe", "punsubscribe", "sunsubscribe":
            guard parts.count >= 2, let name = parts[1].string else { return }
            let family = SubscriptionFamily(replyKind: kind)
            let removal = kind.hasSuffix("unsubscribe")
            if family == .shard, !answered(removal ? .sunsubscribe : .ssubscribe, name) {
                // Nothing of ours asked: the node dropped the channel (its slot left this node).
                lost([name], reason: "the node unsubscribed it: its slot moved to another node")
                return
            }
            confirm(family, name)
            if resubscribing != nil, !removal {
                resubscribing?.remove(family.key(name))
                reportResubscribed()
            }
            shared.handler(removal ? .unsubscribed(name, pattern: family == .pattern) : .subscribed(name, pattern: family == .pattern))
        default:
            break
        }
    }

    /// Marks `name` answered in the oldest shard command; false when that command did not ask
    /// for it (an unsolicited reply).
    private func answered(_ kind: SubscriptionKind, _ name: String) -> Bool {
        guard let first = shardInFlight.first, first.kind == kind, first.names.contains(name) else { return false }
        shardInFlight[0].names.remove(name)
        if shardInFlight[0].names.isEmpty { shardInFlight.removeFirst() }
        return true
    }

    /// An error reply: in subscribed mode only a cluster node's refusal of a shard command
    /// (`MOVED`, `CROSSSLOT`), which answers the oldest one unanswered.
    private func refused(_ message: String) {
        guard !shardInFlight.isEmpty else {
            shared.logger.warning("Redis subscriber got an error reply it did not expect", metadata: ["error": "\(message)"])
            return
        }
        let (kind, names) = shardInFlight.removeFirst()
        let error = RedisError(kind: .server, message: message, command: kind.command)
        // Let go of them first: a caller resumed below already finds them not held.
        if kind.adds { lost(names.sorted(), reason: message) }
        for name in names.sorted() {
            guard var waiters = waiting.removeValue(forKey: SubscriptionFamily.shard.key(name)), !waiters.isEmpty else { continue }
            let waiter = waiters.removeFirst()
            if !waiters.isEmpty { waiting[SubscriptionFamily.shard.key(name)] = waiters }
            // A refused removal is moot: the channel is not subscribed here either way.
            if kind.adds { waiter.fail(name, error) } else { waiter.resolve(name) }
        }
    }

    /// The node will not deliver these shard channels: no longer held, and reported.
    private func lost(_ names: [String], reason: String) {
        shared.state.withLock { state in
            for name in names { state.shardChannels.remove(name) }
        }
        if resubscribing != nil {
            for name in names { resubscribing?.remove(SubscriptionFamily.shard.key(name)) }
        }
        shared.logger.notice("Redis shard channels lost", metadata: ["channels": "\(names.count)", "reason": "\(reason)"])
        shared.handler(.shardChannelsLost(names, reason: reason))
        reportResubscribed()
    }

    private func reportResubscribed() {
        guard let waiting = resubscribing, waiting.isEmpty else { return }
        resubscribing = nil
        shared.handler(.reconnected)
    }

    private func confirm(_ family: SubscriptionFamily, _ name: String) {
        guard var waiters = waiting.removeValue(forKey: family.key(name)), !waiters.isEmpty else { return }
        let waiter = waiters.removeFirst()
        if !waiters.isEmpty { waiting[family.key(name)] = waiters }
        waiter.resolve(name)
    }

    private func pollWake(timeoutMs: Int32) {
        var fd = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
        if poll(&fd, 1, max(timeoutMs, 1)) > 0 { drainWake() }
    }

    private func drainWake() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &buffer, buffer.count) > 0 {}
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
            state.wake?.close()
            state.wake = nil
            return waiters
        }
        shared.onClose?()
        for waiter in closeWaiters { waiter.resume() }
    }
}

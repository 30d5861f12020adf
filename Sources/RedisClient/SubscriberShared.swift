import CHiredis
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// The three kinds of subscription a connection can hold: channels (`SUBSCRIBE`), patterns
/// (`PSUBSCRIBE`) and shard channels of a Redis Cluster (`SSUBSCRIBE`, in the slot of the
/// channel's name).
enum SubscriptionFamily: String {
    case channel = "c:", pattern = "p:", shard = "s:"

    /// The family of a reply's kind (`subscribe`, `punsubscribe`, `ssubscribe`, …).
    init(replyKind kind: String) {
        switch kind {
        case "psubscribe", "punsubscribe", "pmessage": self = .pattern
        case "ssubscribe", "sunsubscribe", "smessage": self = .shard
        default: self = .channel
        }
    }

    /// The waiter book's key of a name.
    func key(_ name: String) -> String { rawValue + name }
}

enum SubscriptionKind: String {
    case subscribe, psubscribe, ssubscribe, unsubscribe, punsubscribe, sunsubscribe

    var family: SubscriptionFamily {
        switch self {
        case .subscribe, .unsubscribe: .channel
        case .psubscribe, .punsubscribe: .pattern
        case .ssubscribe, .sunsubscribe: .shard
        }
    }
    var adds: Bool { self == .subscribe || self == .psubscribe || self == .ssubscribe }
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

    /// The server refused `name` (a shard channel whose slot another node serves): the whole
    /// request fails, once; later confirmations of its other names change nothing.
    func fail(_ name: String, _ error: RedisError) {
        guard remaining.remove(name) != nil else { return }
        remaining.removeAll()
        continuation.resume(returning: .failure(error))
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
    var shardChannels: Set<String> = []
    /// The thread's wake-up pipe: nil until the thread is started (which waits for the pipe:
    /// a process out of descriptors gets none) and once it has finished.
    var wake: WakePipe?
    var closing = false
    var finished = false
    var closeWaiters: [CheckedContinuation<Void, Never>] = []
}

/// What callers and the subscriber thread share; every mutable part is behind `state`'s lock.
final class SubscriberShared: Sendable {
    let configuration: RedisConfiguration
    let logger: Logger
    let handler: @Sendable (RedisSubscriberEvent) -> Void
    let state: Mutex<SubscriberState>
    let onClose: (@Sendable () -> Void)?
    let dropCounter: (@Sendable () -> Int)?
    /// How the wake-up pipe is made (a seam: tests make it fail as a process out of
    /// descriptors would).
    let makeWakePipe: @Sendable () -> Result<WakePipe, RedisError>
    /// The name of the subscriber's thread (as `/proc/self/task/*/comm` shows it: 15 bytes at most).
    let threadName: String
    /// For a Sentinel endpoint: the sentinels' failover announcements, this subscriber's own.
    let watch: SentinelWatch?

    init(configuration: RedisConfiguration, logger: Logger, handler: @escaping @Sendable (RedisSubscriberEvent) -> Void,
         onClose: (@Sendable () -> Void)?, dropCounter: (@Sendable () -> Int)?, holding channels: Set<String>,
         makeWakePipe: @escaping @Sendable () -> Result<WakePipe, RedisError>, threadName: String) {
        self.configuration = configuration
        self.logger = logger
        self.handler = handler
        self.onClose = onClose
        self.dropCounter = dropCounter
        self.makeWakePipe = makeWakePipe
        self.threadName = threadName
        var initial = SubscriberState()
        initial.channels = channels
        state = Mutex(initial)
        if case .sentinel(let sentinels) = configuration.endpoint {
            watch = SentinelWatch(sentinels, configuration: configuration, logger: logger)
        } else {
            watch = nil
        }
    }

    /// Wakes the thread. Takes the state as its lock holder passes it: `finish()`
    /// closes the pipe under the same lock, so a wake never writes to a closed or reused
    /// descriptor.
    func wake(_ state: borrowing SubscriberState) {
        guard !state.finished, let pipe = state.wake else { return }
        var byte: UInt8 = 1
        _ = write(pipe.write, &byte, 1)
    }
}

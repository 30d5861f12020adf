import CHiredis
import Foundation
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

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

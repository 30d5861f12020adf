import Synchronization

/// Asks a pool worker to stop (SIGTERM, a test): it takes no new task, and the task it is
/// running either finishes within the worker's grace period or is handed back.
public final class PoolStop: Sendable {
    private struct State {
        var requested = false
        var handlers: [Int: @Sendable () -> Void] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())

    public init() {}

    public var isRequested: Bool { state.withLock { $0.requested } }

    /// Requests the stop; handlers run once, on the caller's thread.
    public func request() {
        let handlers = state.withLock { state -> [@Sendable () -> Void] in
            guard !state.requested else { return [] }
            state.requested = true
            defer { state.handlers = [:] }
            return Array(state.handlers.values)
        }
        for handler in handlers { handler() }
    }

    /// Runs `handler` when the stop is requested (now, if it was already); returns a token for
    /// `remove(_:)`, nil when it ran now.
    func onRequest(_ handler: @escaping @Sendable () -> Void) -> Int? {
        let token = state.withLock { state -> Int? in
            guard !state.requested else { return nil }
            state.nextID += 1
            state.handlers[state.nextID] = handler
            return state.nextID
        }
        if token == nil { handler() }
        return token
    }

    func remove(_ token: Int?) {
        guard let token else { return }
        _ = state.withLock { $0.handlers.removeValue(forKey: token) }
    }

    /// Waits `duration`, or less when the stop is requested meanwhile (or was already).
    public func pause(_ duration: Duration) async {
        let woken = FirstResult<Void>()
        let token = onRequest { woken.resume(()) }
        let timer = Task {
            await Self.sleep(duration)
            woken.resume(())
        }
        await woken.value()
        timer.cancel()
        remove(token)
    }

    /// Sleeps `duration`; a cancelled sleep just ends early (the callers' waits are bounded by
    /// their own deadlines or stops).
    static func sleep(_ duration: Duration) async {
        do { try await Task.sleep(for: duration) } catch { return }
    }
}

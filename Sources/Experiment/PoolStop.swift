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
}

/// A value delivered once to one waiter: the first `resume` wins, later ones are ignored.
final class FirstResult<Value: Sendable>: Sendable {
    private let state = Mutex<(CheckedContinuation<Value, Never>?, Value?)>((nil, nil))

    /// Waits for the first value.
    func value() async -> Value {
        await withCheckedContinuation { continuation in
            let ready = state.withLock { state -> Value? in
                if let value = state.1 { return value }
                state.0 = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }

    func resume(_ value: Value) {
        let waiter = state.withLock { state -> CheckedContinuation<Value, Never>? in
            guard state.1 == nil else { return nil }
            state.1 = value
            defer { state.0 = nil }
            return state.0
        }
        waiter?.resume(returning: value)
    }
}

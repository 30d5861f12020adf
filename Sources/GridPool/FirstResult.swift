import Synchronization

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

import Synchronization

/// What the Redis subscriber's thread hands to the gateway core, in arrival order: a burst
/// (one aggregator batch) costs one wake-up of the service thread. Events that arrive before
/// the core is attached wait for it.
final class LiveInbox: Sendable {
    enum Event: Sendable {
        /// A result on a camera channel, with its timestamp for the latest cache.
        case result(LiveResult, timestamp: Int64?)
        /// Pub/sub lost: clients are told, and catch up later.
        case redisLost
        /// Pub/sub (back) with every subscription live.
        case redisRestored
        /// Cameras that appeared on a cluster while "every camera" is watched; their channels are
        /// being subscribed now (so their history is read after that).
        case camerasAppeared([Int])
        /// Cameras whose subscriptions were interrupted (their slot moved) are live again.
        case camerasRestored([Int])
    }

    private struct State {
        var events: [Event] = []
        var core: GatewayCore?
    }

    private let state = Mutex(State())

    /// From now on events go to `core` (those already here first).
    func attach(_ core: GatewayCore) {
        let waiting = state.withLock { state -> Bool in
            state.core = core
            return !state.events.isEmpty
        }
        if waiting { core.post { $0.drainInbox() } }
    }

    /// Lets go of the core (the gateway stopped); later events are dropped.
    func detach() {
        state.withLock { state in
            state.core = nil
            state.events = []
        }
    }

    /// Queues one event; the first of a burst wakes the core.
    func push(_ event: Event) {
        let wake = state.withLock { state -> GatewayCore? in
            guard state.core != nil || state.events.count < 100_000 else { return nil } // bounded before the core exists
            state.events.append(event)
            return state.events.count == 1 ? state.core : nil
        }
        wake?.post { $0.drainInbox() }
    }

    /// Everything queued so far.
    func take() -> [Event] {
        state.withLock { state in
            defer { state.events.removeAll(keepingCapacity: true) }
            return state.events
        }
    }
}

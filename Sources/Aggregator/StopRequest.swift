import Synchronization

/// The aggregator's stop flag: raised once (graceful shutdown, `requestStop()`), read by the
/// batch loop and by the outage retry, which would otherwise wait out an outage forever.
final class StopRequest: Sendable {
    private let raised = Atomic(false)

    func raise() { raised.store(true, ordering: .releasing) }

    var isRaised: Bool { raised.load(ordering: .acquiring) }
}

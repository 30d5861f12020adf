public import TrafficModel

/// What the hub asks its shell to do, in order.
public enum HubAction: Sendable, Equatable {
    /// Send this live result to these clients (one shared frame).
    case deliver(LiveResult, to: [ConnectionID])
    /// Send a result to one client as part of a recovery or after its snapshot (may exceed the
    /// client's live queue limit by the replay allowance: it is one bounded burst).
    case replay(LiveResult, to: ConnectionID)
    case send(ConnectionID, ServerMessage)
    case close(ConnectionID, code: UInt16, reason: String)
    /// Start or stop the Redis channel subscription of a camera.
    case subscribe(camera: Int)
    case unsubscribe(camera: Int)
    /// Start or stop the pattern subscription covering every camera.
    case subscribeAll
    case unsubscribeAll
    /// Once the subscriptions asked for so far are active, read the latest result of these
    /// cameras (every camera when `all`), then `snapshotReady` with the same generation.
    case fetchSnapshot(ConnectionID, cameras: [Int], all: Bool, generation: UInt64)
    /// Once the subscriptions are active, read the camera's history after `since`, then
    /// `recoveryReady` with the same generation.
    case fetchRecovery(ConnectionID, camera: Int, since: ResultPosition, generation: UInt64)
    /// Read the camera's history after `after` (results pub/sub did not bring), then
    /// `catchUpReady` with the same generation.
    case fetchCatchUp(camera: Int, after: ResultPosition, generation: UInt64)
}

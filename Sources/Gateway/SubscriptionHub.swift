public import TrafficModel

/// Who watches which camera, and the ordering rules of the live stream: snapshot or recovery
/// first, then live results, with no gap and no duplicate per client.
///
/// A plain state machine: every input returns the actions to perform; it does no I/O and is
/// tested without servers. The gateway runs it on the WebSocket service thread.
///
/// - Each camera's live stream is checked for continuity (`offset` must be the last one + 1 in
///   the same epoch). A hole (pub/sub lost messages, e.g. across a Redis reconnect) holds the
///   camera's live results back and fetches the missing ones from the camera's history; only
///   when history no longer has them do clients get a `gap` notice.
/// - A client subscribing to a camera is *pending* until its snapshot or recovery arrives; live
///   results meanwhile are buffered for it (within a byte budget), and afterwards only those
///   newer than what it already got are delivered. A client whose next result is not the one
///   after its last (its snapshot was older than the stream) is repaired from history the same
///   way.
/// - Every fetch carries a generation; an answer for a watch that was replaced meanwhile
///   (unsubscribed and subscribed again) is ignored.
public struct SubscriptionHub: Sendable {
    struct Watch: Sendable {
        /// Subscribed by name (not only through `"*"`).
        var explicit: Bool
        var pending: Bool
        var generation: UInt64
        var buffer: [LiveResult] = []
        /// The last position this client got for the camera.
        var delivered: ResultPosition?
        /// The pending fetch repairs a hole in this client's stream (not a subscribe).
        var repairing = false
        /// The last repair was impossible: the next hole gets a `gap` notice instead of another
        /// repair (a repair → snapshot → repair loop must not form).
        var repairFailed = false
    }

    struct Client: Sendable {
        var permission: CameraPermission
        var watches: [Int: Watch] = [:]
        var all = false
        var allPending = false
        var allGeneration: UInt64 = 0
        var allBuffer: [LiveResult] = []
        /// Bytes held in this client's buffers (all watches and `allBuffer`).
        var bufferedBytes = 0
    }

    struct Camera: Sendable {
        var last: ResultPosition?
        /// `last` came from a snapshot or recovery, not the live stream: results at or below it
        /// still go to clients (whose own positions drop what they have).
        var seeded = false
        var catchingUp = false
        /// The catch-up reads the camera's history from its first offset in the current epoch
        /// (a camera that appeared while "*" is watched: `last` is only a placeholder).
        var fromStart = false
        var generation: UInt64 = 0
        var held: [LiveResult] = []
        var heldBytes = 0
    }

    /// Bytes of live results a pending client may buffer before it is given up on (1013), and
    /// a camera catching up may hold before continuity is given up (with a `gap` notice).
    public var maximumBufferedBytes: Int
    /// Cameras one connection may name (`"*"` covers all of them as one).
    public var maximumCamerasPerClient: Int

    var clients: [ConnectionID: Client] = [:]
    var watchers: [Int: Set<ConnectionID>] = [:]
    var allClients: Set<ConnectionID> = []
    var cameras: [Int: Camera] = [:]
    var nextGeneration: UInt64 = 1
    public internal(set) var redisUp: Bool
    /// Camera subscriptions summed over clients (`"*"` counts once), kept as they change.
    public internal(set) var subscriptionCount = 0

    public init(maximumBufferedBytes: Int = 8 << 20, maximumCamerasPerClient: Int = 1_000, redisUp: Bool = true) {
        self.maximumBufferedBytes = maximumBufferedBytes
        self.maximumCamerasPerClient = maximumCamerasPerClient
        self.redisUp = redisUp
    }

    /// Cameras with a channel subscription.
    public var subscribedCameras: Set<Int> { Set(watchers.keys) }
    /// Whether some client watches every camera (the pattern subscription is on).
    public var watchesAll: Bool { !allClients.isEmpty }
    /// Whether the gateway currently receives the camera's live results.
    public func receives(_ camera: Int) -> Bool { watchesAll || !(watchers[camera]?.isEmpty ?? true) }

    mutating func generation() -> UInt64 {
        defer { nextGeneration += 1 }
        return nextGeneration
    }

    // MARK: Connections

    public mutating func connect(_ id: ConnectionID, permission: CameraPermission) {
        clients[id] = Client(permission: permission)
    }

    public mutating func disconnect(_ id: ConnectionID) -> [HubAction] {
        guard let client = clients[id] else { return [] }
        var actions = unsubscribe(id, .all, acknowledge: false)
        actions += unsubscribe(id, .cameras(Array(client.watches.keys)), acknowledge: false)
        clients[id] = nil
        return actions
    }

    // MARK: Client requests

    public mutating func subscribe(_ id: ConnectionID, _ selection: CameraSelection, since: [Int: ResultPosition] = [:]) -> [HubAction] {
        guard let permission = clients[id]?.permission else { return [] }
        var actions: [HubAction] = []
        switch selection {
        case .all:
            guard permission == .all else {
                return [.send(id, .error(reason: "forbidden", detail: "this connection may not watch every camera"))]
            }
            guard clients[id]?.all == false else { return [.send(id, .subscribed(cameras: [], all: true))] }
            let snapshotGeneration = generation()
            clients[id]!.all = true
            clients[id]!.allPending = true
            clients[id]!.allGeneration = snapshotGeneration
            subscriptionCount += 1
            if allClients.isEmpty { actions.append(.subscribeAll) }
            allClients.insert(id)
            actions.append(.send(id, .subscribed(cameras: [], all: true)))
            for (camera, position) in since.sorted(by: { $0.key < $1.key }) where clients[id]!.watches[camera] == nil {
                let g = generation()
                clients[id]!.watches[camera] = Watch(explicit: false, pending: true, generation: g)
                actions.append(.fetchRecovery(id, camera: camera, since: position, generation: g))
            }
            actions.append(.fetchSnapshot(id, cameras: [], all: true, generation: snapshotGeneration))
        case .cameras(let requested):
            let unique = Array(Set(requested)).sorted()
            let refused = unique.filter { !permission.allows($0) }
            if !refused.isEmpty {
                actions.append(.send(id, .error(reason: "forbidden", detail: "not allowed to watch camera(s) \(refused.map(String.init).joined(separator: ","))")))
            }
            var accepted: [Int] = []
            var snapshot: [Int] = []
            var overLimit: [Int] = []
            let snapshotGeneration = generation()
            var fetches: [HubAction] = []
            var named = clients[id]!.watches.values.filter(\.explicit).count
            for camera in unique where permission.allows(camera) {
                if clients[id]!.watches[camera]?.explicit == true {
                    accepted.append(camera)
                    continue
                }
                guard named < maximumCamerasPerClient else {
                    overLimit.append(camera)
                    continue
                }
                named += 1
                accepted.append(camera)
                if watchers[camera, default: []].isEmpty { fetches.append(.subscribe(camera: camera)) }
                watchers[camera, default: []].insert(id)
                subscriptionCount += 1
                if clients[id]!.watches[camera] != nil {
                    // Already watched through "*" (live, or its recovery in flight): it keeps its
                    // state and its fetch; it only becomes explicit.
                    clients[id]!.watches[camera]!.explicit = true
                    continue
                }
                if let position = since[camera] {
                    let g = generation()
                    clients[id]!.watches[camera] = Watch(explicit: true, pending: true, generation: g)
                    fetches.append(.fetchRecovery(id, camera: camera, since: position, generation: g))
                } else {
                    clients[id]!.watches[camera] = Watch(explicit: true, pending: true, generation: snapshotGeneration)
                    snapshot.append(camera)
                }
            }
            if !overLimit.isEmpty {
                actions.append(.send(id, .error(reason: "too_many_cameras", detail: "a connection may name at most \(maximumCamerasPerClient) cameras (use \"*\" for all); not subscribed: \(overLimit.count)")))
            }
            if !accepted.isEmpty || (refused.isEmpty && overLimit.isEmpty) { actions.append(.send(id, .subscribed(cameras: accepted, all: false))) }
            actions += fetches
            if !snapshot.isEmpty { actions.append(.fetchSnapshot(id, cameras: snapshot, all: false, generation: snapshotGeneration)) }
        }
        return actions
    }

    public mutating func unsubscribe(_ id: ConnectionID, _ selection: CameraSelection) -> [HubAction] {
        unsubscribe(id, selection, acknowledge: true)
    }

    mutating func unsubscribe(_ id: ConnectionID, _ selection: CameraSelection, acknowledge: Bool) -> [HubAction] {
        guard clients[id] != nil else { return [] }
        var actions: [HubAction] = []
        switch selection {
        case .all:
            if clients[id]!.all {
                clients[id]!.all = false
                clients[id]!.allPending = false
                releaseBuffered(id, clients[id]!.allBuffer)
                clients[id]!.allBuffer = []
                for (camera, watch) in clients[id]!.watches where !watch.explicit {
                    releaseBuffered(id, watch.buffer)
                    clients[id]!.watches[camera] = nil
                }
                subscriptionCount -= 1
                allClients.remove(id)
                if allClients.isEmpty {
                    actions.append(.unsubscribeAll)
                    cameras = cameras.filter { !(watchers[$0.key]?.isEmpty ?? true) }
                }
            }
            if acknowledge { actions.append(.send(id, .unsubscribed(cameras: [], all: true))) }
        case .cameras(let list):
            var removed: [Int] = []
            for camera in Set(list).sorted() where clients[id]!.watches[camera]?.explicit == true {
                if clients[id]!.all {
                    // Still covered by "*": the watch (and any fetch in flight) stays.
                    clients[id]!.watches[camera]!.explicit = false
                } else {
                    releaseBuffered(id, clients[id]!.watches[camera]!.buffer)
                    clients[id]!.watches[camera] = nil
                }
                subscriptionCount -= 1
                removed.append(camera)
                watchers[camera]?.remove(id)
                if watchers[camera]?.isEmpty == true {
                    watchers[camera] = nil
                    actions.append(.unsubscribe(camera: camera))
                    if allClients.isEmpty { cameras[camera] = nil }
                }
            }
            if acknowledge { actions.append(.send(id, .unsubscribed(cameras: removed, all: false))) }
        }
        return actions
    }

    mutating func releaseBuffered(_ id: ConnectionID, _ results: [LiveResult]) {
        clients[id]?.bufferedBytes -= results.reduce(0) { $0 + $1.payload.count }
    }

    // MARK: Redis state

    /// The subscriber lost Redis: clients are told; what is published meanwhile is recovered
    /// from history once it is back.
    public mutating func redisLost() -> [HubAction] {
        guard redisUp else { return [] }
        redisUp = false
        return clients.keys.sorted().map { .send($0, .status(redis: false)) }
    }

    /// The subscriber is back and resubscribed: clients are told, and every watched camera
    /// catches up from its history.
    public mutating func redisRestored() -> [HubAction] {
        var actions: [HubAction] = []
        if !redisUp {
            redisUp = true
            actions += clients.keys.sorted().map { .send($0, .status(redis: true)) }
        }
        return actions + catchUp(cameras.keys.sorted())
    }

    /// Some cameras' subscriptions were interrupted and are live again (on a cluster, their slot
    /// moved): those cameras catch up from their history; clients need not hear of it.
    public mutating func camerasRestored(_ restored: [Int]) -> [HubAction] {
        catchUp(restored.sorted())
    }

    /// Each followed camera reads its history after the last result it got.
    mutating func catchUp(_ list: [Int]) -> [HubAction] {
        var actions: [HubAction] = []
        for camera in list {
            guard let state = cameras[camera], !state.catchingUp, let last = state.last else { continue }
            let g = generation()
            cameras[camera] = Camera(last: last, catchingUp: true, generation: g)
            actions.append(.fetchCatchUp(camera: camera, after: last, generation: g))
        }
        return actions
    }
}

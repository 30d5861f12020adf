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
        var generation: UInt64 = 0
        var held: [LiveResult] = []
        var heldBytes = 0
    }

    /// Bytes of live results a pending client may buffer before it is given up on (1013), and
    /// a camera catching up may hold before continuity is given up (with a `gap` notice).
    public var maximumBufferedBytes: Int
    /// Cameras one connection may name (`"*"` covers all of them as one).
    public var maximumCamerasPerClient: Int

    private(set) var clients: [ConnectionID: Client] = [:]
    private(set) var watchers: [Int: Set<ConnectionID>] = [:]
    private(set) var allClients: Set<ConnectionID> = []
    private(set) var cameras: [Int: Camera] = [:]
    private var nextGeneration: UInt64 = 1
    public private(set) var redisUp: Bool
    /// Camera subscriptions summed over clients (`"*"` counts once), kept as they change.
    public private(set) var subscriptionCount = 0

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

    private mutating func generation() -> UInt64 {
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

    private mutating func unsubscribe(_ id: ConnectionID, _ selection: CameraSelection, acknowledge: Bool) -> [HubAction] {
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

    private mutating func releaseBuffered(_ id: ConnectionID, _ results: [LiveResult]) {
        clients[id]?.bufferedBytes -= results.reduce(0) { $0 + $1.payload.count }
    }

    // MARK: Live stream

    /// A result arrived on a channel (or pattern) subscription.
    public mutating func receive(_ result: LiveResult) -> [HubAction] {
        let camera = result.camera
        guard receives(camera) else { return [] }
        guard let position = result.position else { return fanOut(result) }
        if cameras[camera]?.catchingUp == true {
            if cameras[camera]!.heldBytes + result.payload.count > maximumBufferedBytes {
                // The history read is not coming back in time: deliver what is held, tell
                // clients what is missing before it, and go on.
                return finishCatchUp(camera, read: HistoryRead(current: nil, entries: []), reason: "history read did not complete") + receive(result)
            }
            cameras[camera]!.held.append(result)
            cameras[camera]!.heldBytes += result.payload.count
            return []
        }
        var actions: [HubAction] = []
        if let last = cameras[camera]?.last {
            if position.epoch != last.epoch {
                actions += notice(camera, .gap(camera: camera, from: nil, to: nil, reason: "sequence restarted under a new epoch"))
                if position.offset > 1 {
                    return actions + startCatchUp(camera, after: ResultPosition(offset: 0, epoch: position.epoch), holding: result)
                }
            } else if position.offset <= last.offset {
                // Already handled (channel and pattern both deliver, or a catch-up got it) —
                // unless `last` only came from a client's snapshot: then clients decide.
                return cameras[camera]!.seeded ? fanOut(result) : []
            } else if position.offset > last.offset + 1 {
                return startCatchUp(camera, after: last, holding: result)
            }
        }
        cameras[camera, default: Camera()].last = position
        cameras[camera]!.seeded = false
        return actions + fanOut(result)
    }

    private mutating func startCatchUp(_ camera: Int, after: ResultPosition, holding result: LiveResult) -> [HubAction] {
        let g = generation()
        cameras[camera] = Camera(last: after, catchingUp: true, generation: g, held: [result], heldBytes: result.payload.count)
        return [.fetchCatchUp(camera: camera, after: after, generation: g)]
    }

    /// The history read of a catch-up came back.
    public mutating func catchUpReady(camera: Int, generation: UInt64, read: HistoryRead) -> [HubAction] {
        guard let state = cameras[camera], state.catchingUp, state.generation == generation, state.last != nil else { return [] }
        return finishCatchUp(camera, read: read, reason: "no longer in history")
    }

    private mutating func finishCatchUp(_ camera: Int, read: HistoryRead, reason: String) -> [HubAction] {
        guard let state = cameras[camera], let after = state.last else { return [] }
        let held = state.held
        var actions: [HubAction] = []
        if let current = read.current, current.epoch != after.epoch {
            // The sequence restarted (Redis lost the counter): fetch the new one from its start,
            // keeping what is held.
            actions += notice(camera, .gap(camera: camera, from: nil, to: nil, reason: "sequence restarted under a new epoch"))
            // Held results of the old epoch are covered by that notice; only the new one's stay.
            let g = self.generation()
            let start = ResultPosition(offset: 0, epoch: current.epoch)
            let kept = held.filter { $0.position.map { $0.epoch == current.epoch } ?? true }
            cameras[camera] = Camera(last: start, catchingUp: true, generation: g, held: kept, heldBytes: kept.reduce(0) { $0 + $1.payload.count })
            return actions + [.fetchCatchUp(camera: camera, after: start, generation: g)]
        }
        cameras[camera] = Camera(last: after)
        if let current = read.current, current.offset < after.offset {
            // Redis came back from older persisted data under the same epoch: offsets above
            // what it kept are handed out again, to new results, and the gateway cannot tell
            // which of the offsets clients hold are still the same results. Everyone is told,
            // positions of this epoch are forgotten, and the stream goes on from here.
            actions += notice(camera, .gap(camera: camera, from: nil, to: nil, reason: "Redis lost its newest writes; offsets up to \(after.offset) may now name other results"))
            for id in audience(camera) {
                guard let watch = clients[id]?.watches[camera] else { continue }
                if watch.pending {
                    let stale = watch.buffer.filter { $0.position?.epoch == current.epoch }
                    releaseBuffered(id, stale)
                    clients[id]!.watches[camera]!.buffer.removeAll { $0.position?.epoch == current.epoch }
                } else if watch.delivered?.epoch == current.epoch {
                    clients[id]!.watches[camera]!.delivered = nil
                }
            }
            cameras[camera]!.last = nil
            for result in held { actions += receive(result) }
            return actions
        }
        let entries = read.entries.filter { $0.position?.epoch == after.epoch && ($0.position?.offset ?? 0) > after.offset }
        let nextKnown = entries.first?.position?.offset ?? held.first(where: { $0.position?.epoch == after.epoch })?.position?.offset
        if let nextKnown, nextKnown > after.offset + 1 {
            actions += skip(camera, epoch: after.epoch, after: after.offset, to: nextKnown, reason: reason)
        }
        for entry in entries {
            guard let position = entry.position else { continue }
            if let last = cameras[camera]?.last, last.epoch == position.epoch, position.offset <= last.offset { continue }
            cameras[camera]!.last = position
            actions += fanOut(entry)
        }
        for result in held { actions += receive(result) }
        return actions
    }

    /// Results `after+1 ..< nextKnown` are lost: each live client that had not got past them is
    /// told (from where it is) and moves on; clients already past them hear nothing.
    private mutating func skip(_ camera: Int, epoch: String, after: Int64, to nextKnown: Int64, reason: String) -> [HubAction] {
        var actions: [HubAction] = []
        cameras[camera]?.last = ResultPosition(offset: nextKnown - 1, epoch: epoch)
        for id in audience(camera) {
            guard let watch = clients[id]?.watches[camera], !watch.pending else { continue }
            let mine = watch.delivered.flatMap { $0.epoch == epoch ? $0.offset : nil }
            if let mine, mine >= nextKnown - 1 { continue }
            actions.append(.send(id, .gap(camera: camera, from: (mine ?? after) + 1, to: nextKnown - 1, reason: reason)))
            clients[id]!.watches[camera]!.delivered = ResultPosition(offset: nextKnown - 1, epoch: epoch)
        }
        return actions
    }

    /// Every client that gets results of `camera` (explicitly or through `"*"`).
    private func audience(_ camera: Int) -> [ConnectionID] {
        let named = watchers[camera] ?? []
        if allClients.isEmpty { return Array(named) }
        if named.isEmpty { return Array(allClients) }
        return Array(named.union(allClients))
    }

    private func notice(_ camera: Int, _ message: ServerMessage) -> [HubAction] {
        audience(camera).map { .send($0, message) }
    }

    private mutating func fanOut(_ result: LiveResult) -> [HubAction] {
        var now: [ConnectionID] = []
        var actions: [HubAction] = []
        for id in audience(result.camera) {
            switch offer(result, to: id) {
            case .deliver: now.append(id)
            case .buffered: break
            case .repair(let action): actions.append(action)
            case .gapThenDeliver(let gap): actions += [gap, .deliver(result, to: [id])]
            case .overflow: actions.append(.close(id, code: 1013, reason: "fell too far behind while catching up"))
            }
        }
        if !now.isEmpty { actions.insert(.deliver(result, to: now), at: 0) }
        return actions
    }

    private enum Offer { case deliver, buffered, overflow, repair(HubAction), gapThenDeliver(HubAction) }

    /// What to do with `result` for one client. Mutates the client's state in place (no copy
    /// of its watch table per result).
    private mutating func offer(_ result: LiveResult, to id: ConnectionID) -> Offer {
        guard clients[id] != nil else { return .buffered }
        let camera = result.camera
        if let state = clients[id]!.watches[camera].map({ (pending: $0.pending, delivered: $0.delivered) }) {
            let (pending, delivered) = state
            if pending { return buffer(result, for: id) { $0.watches[camera]!.buffer.append(result) } }
            if Self.isDuplicate(result.position, after: delivered) { return .buffered }
            if let position = result.position, let delivered, position.epoch == delivered.epoch, position.offset > delivered.offset + 1 {
                if clients[id]!.watches[camera]!.repairFailed {
                    clients[id]!.watches[camera]!.repairFailed = false
                    clients[id]!.watches[camera]!.delivered = position
                    return .gapThenDeliver(.send(id, .gap(camera: camera, from: delivered.offset + 1, to: position.offset - 1, reason: "no longer in history")))
                }
                // This client missed results the stream already passed (its snapshot was older):
                // hold this one and repair from history.
                let g = generation()
                clients[id]!.watches[camera]!.pending = true
                clients[id]!.watches[camera]!.repairing = true
                clients[id]!.watches[camera]!.generation = g
                _ = buffer(result, for: id) { $0.watches[camera]!.buffer.append(result) }
                return .repair(.fetchRecovery(id, camera: camera, since: delivered, generation: g))
            }
            if let position = result.position { clients[id]!.watches[camera]!.delivered = position }
            return .deliver
        }
        guard clients[id]!.all else { return .buffered }
        if clients[id]!.allPending { return buffer(result, for: id) { $0.allBuffer.append(result) } }
        clients[id]!.watches[camera] = Watch(explicit: false, pending: false, generation: 0, delivered: result.position)
        return .deliver
    }

    private mutating func buffer(_ result: LiveResult, for id: ConnectionID, _ append: (inout Client) -> Void) -> Offer {
        if clients[id]!.bufferedBytes + result.payload.count > maximumBufferedBytes { return .overflow }
        append(&clients[id]!)
        clients[id]!.bufferedBytes += result.payload.count
        return .buffered
    }

    static func isDuplicate(_ position: ResultPosition?, after delivered: ResultPosition?) -> Bool {
        guard let position, let delivered, position.epoch == delivered.epoch else { return false }
        return position.offset <= delivered.offset
    }

    /// Starts the camera's continuity check from a position a client was given, when the live
    /// stream has not set one yet (so a reconnect catches a quiet camera up too).
    private mutating func seed(_ camera: Int, _ position: ResultPosition?) {
        guard let position, receives(camera), cameras[camera]?.last == nil, cameras[camera]?.catchingUp != true else { return }
        cameras[camera, default: Camera()].last = position
        cameras[camera]!.seeded = true
    }

    // MARK: Snapshot and recovery

    /// The latest results of a `fetchSnapshot` came back.
    public mutating func snapshotReady(_ id: ConnectionID, entries: [SnapshotEntry], all: Bool, generation: UInt64) -> [HubAction] {
        guard clients[id] != nil else { return [] }
        if all, !(clients[id]!.all && clients[id]!.allPending && clients[id]!.allGeneration == generation) { return [] }
        var sent: [SnapshotEntry] = []
        var flush: [LiveResult] = []
        for entry in entries {
            let camera = entry.camera
            if let watch = clients[id]!.watches[camera] {
                // A "*" snapshot leaves alone cameras with their own snapshot or recovery.
                guard !all, watch.pending, watch.generation == generation else { continue }
                flush += watch.buffer
                releaseBuffered(id, watch.buffer)
                clients[id]!.watches[camera]!.buffer = []
                clients[id]!.watches[camera]!.pending = false
                clients[id]!.watches[camera]!.repairing = false
                clients[id]!.watches[camera]!.delivered = entry.latest?.position ?? entry.current
                sent.append(entry)
            } else if all {
                clients[id]!.watches[camera] = Watch(explicit: false, pending: false, generation: 0, delivered: entry.latest?.position ?? entry.current)
                sent.append(entry)
            } else {
                continue
            }
            seed(camera, entry.current ?? entry.latest?.position)
        }
        if all {
            clients[id]!.allPending = false
            flush += clients[id]!.allBuffer
            releaseBuffered(id, clients[id]!.allBuffer)
            clients[id]!.allBuffer = []
        }
        guard !sent.isEmpty || all else { return [] }
        var actions: [HubAction] = [.send(id, .snapshot(sent))]
        for result in flush { actions += replayOne(result, to: id) }
        return actions
    }

    /// The history read of a `fetchRecovery` came back.
    public mutating func recoveryReady(_ id: ConnectionID, camera: Int, since: ResultPosition, generation: UInt64, read: HistoryRead) -> [HubAction] {
        guard let watch = clients[id]?.watches[camera], watch.pending, watch.generation == generation else { return [] }
        let failure: String?
        let entries = read.entries.filter { $0.position?.epoch == since.epoch && ($0.position?.offset ?? 0) > since.offset }
        if let current = read.current {
            if current.epoch != since.epoch {
                failure = "epoch changed (the camera's sequence restarted)"
            } else if since.offset > current.offset {
                failure = "position \(since.offset) is ahead of the camera's last \(current.offset)"
            } else {
                let offsets = entries.compactMap { $0.position?.offset }
                let contiguous = offsets.enumerated().allSatisfy { $0.element == since.offset + 1 + Int64($0.offset) }
                let covers = (offsets.last ?? since.offset) >= current.offset
                failure = contiguous && covers ? nil : "history no longer holds offset \(since.offset + 1)"
            }
        } else {
            failure = "the camera has no position (no results yet, or Redis lost them)"
        }
        if let failure {
            // Never a partial recovery: the client is told, and gets the snapshot instead.
            let g = self.generation()
            clients[id]!.watches[camera]!.generation = g
            if watch.repairing { clients[id]!.watches[camera]!.repairFailed = true }
            return [.send(id, .recoveryFailed(camera: camera, reason: failure)), .fetchSnapshot(id, cameras: [camera], all: false, generation: g)]
        }
        let buffered = watch.buffer
        releaseBuffered(id, buffered)
        clients[id]!.watches[camera]!.buffer = []
        clients[id]!.watches[camera]!.pending = false
        clients[id]!.watches[camera]!.repairing = false
        clients[id]!.watches[camera]!.delivered = entries.last?.position ?? since
        seed(camera, entries.last?.position ?? since)
        var actions: [HubAction] = [.send(id, .recovered(camera: camera, missed: entries.count))]
        for entry in entries { actions.append(.replay(entry, to: id)) }
        for result in buffered { actions += replayOne(result, to: id) }
        return actions
    }

    private mutating func replayOne(_ result: LiveResult, to id: ConnectionID) -> [HubAction] {
        switch offer(result, to: id) {
        case .deliver: [.replay(result, to: id)]
        case .buffered: []
        case .repair(let action): [action]
        case .gapThenDeliver(let gap): [gap, .replay(result, to: id)]
        case .overflow: [.close(id, code: 1013, reason: "fell too far behind while catching up")]
        }
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
        for camera in cameras.keys.sorted() {
            guard let state = cameras[camera], !state.catchingUp, let last = state.last else { continue }
            let g = generation()
            cameras[camera] = Camera(last: last, catchingUp: true, generation: g)
            actions.append(.fetchCatchUp(camera: camera, after: last, generation: g))
        }
        return actions
    }
}

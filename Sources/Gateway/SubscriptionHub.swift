import TrafficModel

/// What the hub asks its shell to do, in order.
public enum HubAction: Sendable, Equatable {
    /// Send this result to these clients (one shared frame).
    case deliver(LiveResult, to: [ConnectionID])
    case send(ConnectionID, ServerMessage)
    case close(ConnectionID, code: UInt16, reason: String)
    /// Start or stop the Redis channel subscription of a camera.
    case subscribe(camera: Int)
    case unsubscribe(camera: Int)
    /// Start or stop the pattern subscription covering every camera.
    case subscribeAll
    case unsubscribeAll
    /// Read the latest result of these cameras (every camera when `all`), then `snapshotReady`.
    case fetchSnapshot(ConnectionID, cameras: [Int], all: Bool)
    /// Once the camera's subscription is active, read its history after `since`, then
    /// `recoveryReady`.
    case fetchRecovery(ConnectionID, camera: Int, since: ResultPosition)
    /// Read the camera's history after `after` (results pub/sub did not bring), then
    /// `catchUpReady`.
    case fetchCatchUp(camera: Int, after: ResultPosition)
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
///   results meanwhile are buffered for it, and after the snapshot (or recovered results) only
///   those newer than what it already got are delivered.
public struct SubscriptionHub: Sendable {
    struct Watch: Sendable {
        /// Subscribed by name (not only through `"*"`).
        var explicit: Bool
        var pending: Bool
        var buffer: [LiveResult] = []
        /// The last position this client got for the camera.
        var delivered: ResultPosition?
    }

    struct Client: Sendable {
        var permission: CameraPermission
        var watches: [Int: Watch] = [:]
        var all = false
        var allPending = false
        var allBuffer: [LiveResult] = []
    }

    struct Camera: Sendable {
        var last: ResultPosition?
        var catchingUp = false
        var held: [LiveResult] = []
    }

    /// Results a pending client (or a camera catching up) may buffer before it is given up on.
    public var maximumBuffered: Int

    private(set) var clients: [ConnectionID: Client] = [:]
    private(set) var watchers: [Int: Set<ConnectionID>] = [:]
    private(set) var allClients: Set<ConnectionID> = []
    private(set) var cameras: [Int: Camera] = [:]
    public private(set) var redisUp = true

    public init(maximumBuffered: Int = 10_000) {
        self.maximumBuffered = maximumBuffered
    }

    /// Connections known to the hub.
    public var clientCount: Int { clients.count }
    /// Camera subscriptions summed over clients (`"*"` counts once).
    public var subscriptionCount: Int { clients.values.reduce(0) { $0 + $1.watches.values.filter(\.explicit).count + ($1.all ? 1 : 0) } }
    /// Cameras with a channel subscription.
    public var subscribedCameras: Set<Int> { Set(watchers.keys) }
    /// Whether some client watches every camera (the pattern subscription is on).
    public var watchesAll: Bool { !allClients.isEmpty }
    /// Whether the gateway currently receives the camera's live results.
    public func receives(_ camera: Int) -> Bool { watchesAll || !(watchers[camera]?.isEmpty ?? true) }

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
        guard var client = clients[id] else { return [] }
        var actions: [HubAction] = []
        switch selection {
        case .all:
            guard client.permission == .all else {
                return [.send(id, .error(reason: "forbidden", detail: "this connection may not watch every camera"))]
            }
            guard !client.all else { return [.send(id, .subscribed(cameras: [], all: true))] }
            client.all = true
            client.allPending = true
            if allClients.isEmpty { actions.append(.subscribeAll) }
            allClients.insert(id)
            actions.append(.send(id, .subscribed(cameras: [], all: true)))
            for (camera, position) in since.sorted(by: { $0.key < $1.key }) where client.watches[camera] == nil {
                client.watches[camera] = Watch(explicit: false, pending: true)
                actions.append(.fetchRecovery(id, camera: camera, since: position))
            }
            clients[id] = client
            actions.append(.fetchSnapshot(id, cameras: [], all: true))
        case .cameras(let requested):
            let unique = Array(Set(requested)).sorted()
            let refused = unique.filter { !client.permission.allows($0) }
            if !refused.isEmpty {
                actions.append(.send(id, .error(reason: "forbidden", detail: "not allowed to watch camera(s) \(refused.map(String.init).joined(separator: ","))")))
            }
            var accepted: [Int] = []
            var snapshot: [Int] = []
            for camera in unique where client.permission.allows(camera) {
                accepted.append(camera)
                if client.watches[camera]?.explicit == true { continue }
                if watchers[camera, default: []].isEmpty { actions.append(.subscribe(camera: camera)) }
                watchers[camera, default: []].insert(id)
                if var existing = client.watches[camera], !existing.pending {
                    // Already live through "*": keep its position, nothing to fetch.
                    existing.explicit = true
                    client.watches[camera] = existing
                    continue
                }
                client.watches[camera] = Watch(explicit: true, pending: true)
                if let position = since[camera] {
                    actions.append(.fetchRecovery(id, camera: camera, since: position))
                } else {
                    snapshot.append(camera)
                }
            }
            clients[id] = client
            if !accepted.isEmpty || refused.isEmpty { actions.insert(.send(id, .subscribed(cameras: accepted, all: false)), at: refused.isEmpty ? 0 : 1) }
            if !snapshot.isEmpty { actions.append(.fetchSnapshot(id, cameras: snapshot, all: false)) }
        }
        return actions
    }

    public mutating func unsubscribe(_ id: ConnectionID, _ selection: CameraSelection) -> [HubAction] {
        unsubscribe(id, selection, acknowledge: true)
    }

    private mutating func unsubscribe(_ id: ConnectionID, _ selection: CameraSelection, acknowledge: Bool) -> [HubAction] {
        guard var client = clients[id] else { return [] }
        var actions: [HubAction] = []
        switch selection {
        case .all:
            if client.all {
                client.all = false
                client.allPending = false
                client.allBuffer = []
                client.watches = client.watches.filter(\.value.explicit)
                allClients.remove(id)
                if allClients.isEmpty {
                    actions.append(.unsubscribeAll)
                    cameras = cameras.filter { !(watchers[$0.key]?.isEmpty ?? true) }
                }
            }
            if acknowledge { actions.append(.send(id, .unsubscribed(cameras: [], all: true))) }
        case .cameras(let list):
            var removed: [Int] = []
            for camera in Set(list).sorted() where client.watches[camera]?.explicit == true {
                client.watches[camera] = nil
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
        clients[id] = client
        return actions
    }

    // MARK: Live stream

    /// A result arrived on a channel (or pattern) subscription.
    public mutating func receive(_ result: LiveResult) -> [HubAction] {
        let camera = result.camera
        guard !(watchers[camera]?.isEmpty ?? true) || !allClients.isEmpty else { return [] }
        guard let position = result.position else { return fanOut(result) }
        var state = cameras[camera] ?? Camera()
        if state.catchingUp {
            if state.held.count >= maximumBuffered {
                // The history read is not coming back in time; give up on continuity.
                state.catchingUp = false
                state.held = []
                state.last = nil
                cameras[camera] = state
                return notice(camera, .gap(camera: camera, from: nil, to: nil, reason: "history read did not complete")) + receive(result)
            }
            state.held.append(result)
            cameras[camera] = state
            return []
        }
        var actions: [HubAction] = []
        if let last = state.last {
            if position.epoch != last.epoch {
                actions += notice(camera, .gap(camera: camera, from: nil, to: nil, reason: "sequence restarted under a new epoch"))
                if position.offset > 1 {
                    return actions + startCatchUp(camera, &state, after: ResultPosition(offset: 0, epoch: position.epoch), holding: result)
                }
            } else if position.offset <= last.offset {
                return [] // already handled (channel and pattern both deliver, or a catch-up got it)
            } else if position.offset > last.offset + 1 {
                return startCatchUp(camera, &state, after: last, holding: result)
            }
        }
        state.last = position
        cameras[camera] = state
        return actions + fanOut(result)
    }

    private mutating func startCatchUp(_ camera: Int, _ state: inout Camera, after: ResultPosition, holding result: LiveResult) -> [HubAction] {
        state.catchingUp = true
        state.held = [result]
        state.last = after
        cameras[camera] = state
        return [.fetchCatchUp(camera: camera, after: after)]
    }

    /// The history read of a catch-up came back.
    public mutating func catchUpReady(camera: Int, read: HistoryRead) -> [HubAction] {
        guard var state = cameras[camera], state.catchingUp, let after = state.last else { return [] }
        state.catchingUp = false
        let held = state.held
        state.held = []
        var actions: [HubAction] = []
        let entries = read.entries.filter { $0.position?.epoch == after.epoch && ($0.position?.offset ?? 0) > after.offset }
        let nextKnown = entries.first?.position?.offset ?? held.first(where: { $0.position?.epoch == after.epoch })?.position?.offset
        if let nextKnown, nextKnown > after.offset + 1 {
            actions += notice(camera, .gap(camera: camera, from: after.offset + 1, to: nextKnown - 1, reason: "no longer in history"))
        }
        if read.current.map({ $0.epoch != after.epoch }) ?? false, entries.isEmpty {
            state.last = nil // the sequence restarted; the held results start the new one
        }
        cameras[camera] = state
        for entry in entries {
            guard var current = cameras[camera], let position = entry.position else { continue }
            if let last = current.last, last.epoch == position.epoch, position.offset <= last.offset { continue }
            current.last = position
            cameras[camera] = current
            actions += fanOut(entry)
        }
        for result in held { actions += receive(result) }
        return actions
    }

    /// Every client that gets results of `camera` (explicitly or through `"*"`).
    private func audience(_ camera: Int) -> [ConnectionID] {
        var ids = Array(watchers[camera] ?? [])
        for id in allClients where !(watchers[camera]?.contains(id) ?? false) { ids.append(id) }
        return ids.sorted()
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
            case .overflow: actions.append(.close(id, code: 1013, reason: "fell too far behind while catching up"))
            }
        }
        if !now.isEmpty { actions.insert(.deliver(result, to: now), at: 0) }
        return actions
    }

    private enum Offer { case deliver, buffered, overflow }

    private mutating func offer(_ result: LiveResult, to id: ConnectionID) -> Offer {
        guard var client = clients[id] else { return .buffered }
        defer { clients[id] = client }
        if var watch = client.watches[result.camera] {
            if watch.pending {
                if watch.buffer.count >= maximumBuffered { return .overflow }
                watch.buffer.append(result)
                client.watches[result.camera] = watch
                return .buffered
            }
            if Self.isDuplicate(result.position, after: watch.delivered) { return .buffered }
            if let position = result.position { watch.delivered = position }
            client.watches[result.camera] = watch
            return .deliver
        }
        guard client.all else { return .buffered }
        if client.allPending {
            if client.allBuffer.count >= maximumBuffered { return .overflow }
            client.allBuffer.append(result)
            return .buffered
        }
        client.watches[result.camera] = Watch(explicit: false, pending: false, delivered: result.position)
        return .deliver
    }

    static func isDuplicate(_ position: ResultPosition?, after delivered: ResultPosition?) -> Bool {
        guard let position, let delivered, position.epoch == delivered.epoch else { return false }
        return position.offset <= delivered.offset
    }

    // MARK: Snapshot and recovery

    /// The latest results of a `fetchSnapshot` came back.
    public mutating func snapshotReady(_ id: ConnectionID, entries: [SnapshotEntry], all: Bool) -> [HubAction] {
        guard var client = clients[id] else { return [] }
        var sent: [SnapshotEntry] = []
        var flush: [LiveResult] = []
        for entry in entries {
            if var watch = client.watches[entry.camera] {
                // A "*" snapshot leaves alone cameras with their own snapshot or recovery.
                guard !all, watch.pending else { continue }
                watch.pending = false
                watch.delivered = entry.latest?.position
                flush += watch.buffer
                watch.buffer = []
                client.watches[entry.camera] = watch
                sent.append(entry)
            } else if all, client.all {
                client.watches[entry.camera] = Watch(explicit: false, pending: false, delivered: entry.latest?.position)
                sent.append(entry)
            }
        }
        if all, client.all, client.allPending {
            client.allPending = false
            flush += client.allBuffer
            client.allBuffer = []
        }
        clients[id] = client
        var actions: [HubAction] = [.send(id, .snapshot(sent))]
        for result in flush { actions += deliverOne(result, to: id) }
        return actions
    }

    /// The history read of a `fetchRecovery` came back.
    public mutating func recoveryReady(_ id: ConnectionID, camera: Int, since: ResultPosition, read: HistoryRead) -> [HubAction] {
        guard var client = clients[id], var watch = client.watches[camera], watch.pending else { return [] }
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
            return [.send(id, .recoveryFailed(camera: camera, reason: failure)), .fetchSnapshot(id, cameras: [camera], all: false)]
        }
        watch.pending = false
        watch.delivered = entries.last?.position ?? since
        let buffered = watch.buffer
        watch.buffer = []
        client.watches[camera] = watch
        clients[id] = client
        var actions: [HubAction] = [.send(id, .recovered(camera: camera, missed: entries.count))]
        for entry in entries { actions.append(.deliver(entry, to: [id])) }
        for result in buffered { actions += deliverOne(result, to: id) }
        return actions
    }

    private mutating func deliverOne(_ result: LiveResult, to id: ConnectionID) -> [HubAction] {
        switch offer(result, to: id) {
        case .deliver: [.deliver(result, to: [id])]
        case .buffered: []
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
            guard var state = cameras[camera], !state.catchingUp, let last = state.last else { continue }
            state.catchingUp = true
            state.held = []
            cameras[camera] = state
            actions.append(.fetchCatchUp(camera: camera, after: last))
        }
        return actions
    }
}

public import TrafficModel

/// Per-client watches: what each client gets of a camera's results — held back while its
/// snapshot or recovery is pending, then only what is newer than what it has, repaired from
/// history when its own stream has a hole.
extension SubscriptionHub {
    enum Offer { case deliver, buffered, overflow, repair(HubAction), gapThenDeliver(HubAction) }

    /// What to do with `result` for one client. Mutates the client's state in place (no copy
    /// of its watch table per result).
    mutating func offer(_ result: LiveResult, to id: ConnectionID) -> Offer {
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

    mutating func buffer(_ result: LiveResult, for id: ConnectionID, _ append: (inout Client) -> Void) -> Offer {
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
    mutating func seed(_ camera: Int, _ position: ResultPosition?) {
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

    mutating func replayOne(_ result: LiveResult, to id: ConnectionID) -> [HubAction] {
        switch offer(result, to: id) {
        case .deliver: [.replay(result, to: id)]
        case .buffered: []
        case .repair(let action): [action]
        case .gapThenDeliver(let gap): [gap, .replay(result, to: id)]
        case .overflow: [.close(id, code: 1013, reason: "fell too far behind while catching up")]
        }
    }
}

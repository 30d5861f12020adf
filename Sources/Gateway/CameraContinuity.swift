import TrafficModel

/// Per-camera continuity of the live stream: each camera's results must come offset after
/// offset in one epoch; a hole holds the camera's results back while its history is read, and
/// only results history no longer has become a `gap` notice.
extension SubscriptionHub {
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

    mutating func startCatchUp(_ camera: Int, after: ResultPosition, holding result: LiveResult) -> [HubAction] {
        let g = generation()
        cameras[camera] = Camera(last: after, catchingUp: true, generation: g, held: [result], heldBytes: result.payload.count)
        return [.fetchCatchUp(camera: camera, after: after, generation: g)]
    }

    /// Cameras that appeared on a cluster while "*" is watched, announced before their channels
    /// are subscribed: their live results are held and their history read from the start, so "*"
    /// clients get every result of a new camera, in order.
    public mutating func camerasAppeared(_ appeared: [Int]) -> [HubAction] {
        guard watchesAll else { return [] }
        var actions: [HubAction] = []
        for camera in appeared where cameras[camera]?.catchingUp != true {
            // A camera the hub follows already (a snapshot seeded it) catches up from where it is.
            if cameras[camera]?.last != nil {
                actions += catchUp([camera])
                continue
            }
            let g = generation()
            let start = ResultPosition(offset: 0, epoch: "")
            cameras[camera] = Camera(last: start, catchingUp: true, fromStart: true, generation: g)
            actions.append(.fetchCatchUp(camera: camera, after: start, generation: g))
        }
        return actions
    }

    /// The history read of a catch-up came back.
    public mutating func catchUpReady(camera: Int, generation: UInt64, read: HistoryRead) -> [HubAction] {
        guard let state = cameras[camera], state.catchingUp, state.generation == generation, state.last != nil else { return [] }
        return finishCatchUp(camera, read: read, reason: "no longer in history")
    }

    mutating func finishCatchUp(_ camera: Int, read: HistoryRead, reason: String) -> [HubAction] {
        guard let state = cameras[camera], var after = state.last else { return [] }
        if state.fromStart {
            guard let current = read.current else {
                // Nothing to start from (no position, or the read gave up): the stream starts here.
                cameras[camera] = Camera()
                var actions: [HubAction] = []
                for result in state.held { actions += receive(result) }
                return actions
            }
            after = ResultPosition(offset: 0, epoch: current.epoch)
        }
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
    mutating func skip(_ camera: Int, epoch: String, after: Int64, to nextKnown: Int64, reason: String) -> [HubAction] {
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
    func audience(_ camera: Int) -> [ConnectionID] {
        let named = watchers[camera] ?? []
        if allClients.isEmpty { return Array(named) }
        if named.isEmpty { return Array(allClients) }
        return Array(named.union(allClients))
    }

    func notice(_ camera: Int, _ message: ServerMessage) -> [HubAction] {
        audience(camera).map { .send($0, message) }
    }

    mutating func fanOut(_ result: LiveResult) -> [HubAction] {
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
}

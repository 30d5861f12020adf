import Foundation
import RedisClient
import TrafficModel
import Websockets
import Backoff

/// The execution of the hub's actions, and the Redis reads they ask for.
extension GatewayCore {
    func send(_ message: ServerMessage, to connection: ConnectionID, allowance: Int = 0) {
        flushPendingBatch(connection) // results held for batching go first: order is kept
        if case .snapshot(let entries) = message, entries.count > 1 {
            // Big snapshots go out in several frames of at most `snapshotFrameBytes`, as one
            // burst: a snapshot is all the client asked for at once, so it may take the queue as
            // far past its limit as its own size (bounded by `maximumSnapshotBurstBytes`).
            var frames: [OutboundFrame] = []
            var frame = ServerMessage.snapshotHead
            var entry: [UInt8] = []
            var count = 0
            for item in entries {
                entry.removeAll(keepingCapacity: true)
                ServerMessage.encode(item, into: &entry)
                if count > 0, frame.count + 1 + entry.count + ServerMessage.snapshotTail.count > ServerMessage.snapshotFrameBytes {
                    frames.append(OutboundFrame(frame + ServerMessage.snapshotTail))
                    frame = ServerMessage.snapshotHead
                    count = 0
                }
                if count > 0 { frame.append(UInt8(ascii: ",")) }
                frame += entry
                count += 1
            }
            frames.append(OutboundFrame(frame + ServerMessage.snapshotTail))
            let size = frames.reduce(0) { $0 + $1.count }
            let burst = max(allowance, min(size, configuration.maximumSnapshotBurstBytes))
            for frame in frames { enqueue(frame, to: connection, allowance: burst) }
            return
        }
        enqueue(OutboundFrame(message.encoded()), to: connection, allowance: allowance)
    }

    func enqueue(_ frame: OutboundFrame, to connection: ConnectionID, allowance: Int = 0) {
        switch server.send(frame, to: connection, allowance: allowance) {
        case .queued:
            metrics.messagesOut.increment()
            metrics.bytesOut.increment(by: Int64(frame.count))
        case .overLimit:
            metrics.slowClientDisconnects.increment()
            logger.notice("client too slow: send queue over limit, disconnected", metadata: ["connection": "\(connection)", "peer": "\(clients[connection]?.peer ?? "")"])
        case .unknownConnection:
            break
        }
    }

    /// Carries out the hub's actions, in order.
    func perform(_ actions: [HubAction]) {
        for action in actions {
            switch action {
            case .deliver(let result, let ids):
                let frame = ResultFrame.frame(result)
                for id in ids {
                    if clients[id]?.batching == true {
                        hold(result, frame: frame, for: id, allowance: 0)
                    } else {
                        enqueue(frame, to: id)
                    }
                }
            case .replay(let result, let id):
                if clients[id]?.batching == true {
                    hold(result, frame: nil, for: id, allowance: configuration.replayAllowanceBytes)
                } else {
                    enqueue(ResultFrame.frame(result), to: id, allowance: configuration.replayAllowanceBytes)
                }
            case .send(let id, let message):
                switch message {
                case .recovered: metrics.recoveriesOK.increment()
                case .recoveryFailed: metrics.recoveriesFailed.increment()
                case .gap: metrics.gaps.increment()
                default: break
                }
                send(message, to: id, allowance: configuration.replayAllowanceBytes)
            case .close(let id, let code, let reason):
                pendingBatches[id] = nil
                server.close(id, code: code, reason: reason)
            case .subscribe(let camera):
                subscriptions.subscribe(configuration.keys.cameraChannel(camera))
            case .unsubscribe(let camera):
                subscriptions.unsubscribe(configuration.keys.cameraChannel(camera))
                if !hub.receives(camera) { cache.stopFollowing(camera) }
            case .subscribeAll:
                subscriptions.subscribeAll()
            case .unsubscribeAll:
                subscriptions.unsubscribeAll()
                cache.stopFollowing { !hub.receives($0) }
            case .fetchSnapshot(let id, let cameras, let all, let generation):
                fetchSnapshot(id, cameras: cameras, all: all, generation: generation)
            case .fetchRecovery(let id, let camera, let since, let generation):
                Task {
                    guard let read = await readHistory(camera: camera, after: since) else { return }
                    perform(hub.recoveryReady(id, camera: camera, since: since, generation: generation, read: read))
                }
            case .fetchCatchUp(let camera, let after, let generation):
                Task {
                    guard let read = await readHistory(camera: camera, after: after) else { return }
                    // What pub/sub missed also keeps the latest cache current.
                    if hub.receives(camera) {
                        for entry in read.entries { cache.offer(entry, timestamp: LatestCache.timestamp(of: entry.payload)) }
                    }
                    perform(hub.catchUpReady(camera: camera, generation: generation, read: read))
                }
            }
        }
    }

    /// Holds a result for a batching client until the server writes; the first one held asks
    /// the server for the `flushing()` call that turns them into frames.
    private func hold(_ result: LiveResult, frame: OutboundFrame?, for id: ConnectionID, allowance: Int) {
        if pendingOrder.isEmpty { server.requestFlushCallback() }
        if pendingBatches[id] == nil {
            pendingBatches[id] = PendingBatch()
            pendingOrder.append(id)
        }
        pendingBatches[id]!.results.append((result, frame))
        pendingBatches[id]!.allowance = max(pendingBatches[id]!.allowance, allowance)
    }

    /// The server is about to write: every held batch becomes one frame (a lone result its
    /// shared frame, never waiting for company).
    func flushing() {
        let order = pendingOrder
        pendingOrder.removeAll(keepingCapacity: true)
        for id in order { flushPendingBatch(id) }
    }

    /// Queues `id`'s held results: one `result` frame, or one `results` frame for several.
    func flushPendingBatch(_ id: ConnectionID) {
        guard let batch = pendingBatches.removeValue(forKey: id), let first = batch.results.first else { return }
        if batch.results.count == 1 {
            enqueue(first.frame ?? ResultFrame.frame(first.result), to: id, allowance: batch.allowance)
        } else {
            metrics.batchedResults.increment(by: Int64(batch.results.count))
            enqueue(ResultFrame.batchFrame(batch.results.map(\.result)), to: id, allowance: batch.allowance)
        }
    }

    /// Reads history after the subscription changes queued so far are active; retries while
    /// Redis is unreachable (nil: the gateway closed).
    func readHistory(camera: Int, after: ResultPosition) async -> HistoryRead? {
        let state = self.state
        return await readAfterBarrier("history of camera \(camera)") { () async throws(RedisError) in
            try await state.history(camera: camera, after: after)
        }
    }

    /// A snapshot for a subscribe: cached latest results of cameras the live stream keeps
    /// current, the rest read from Redis after the subscription barrier (never an older read),
    /// retried until Redis answers.
    func fetchSnapshot(_ id: ConnectionID, cameras: [Int], all: Bool, generation: UInt64) {
        var known: [Int: LiveResult?] = [:]
        if !all {
            for camera in cameras { if let hit = cache.lookup(camera, followingOnly: true) { known[camera] = hit } }
            if known.count == cameras.count {
                perform(hub.snapshotReady(id, entries: cameras.map { SnapshotEntry(camera: $0, latest: known[$0] ?? nil) }, all: false, generation: generation))
                return
            }
        }
        let missing = cameras.filter { known[$0] == nil }
        let state = self.state
        Task {
            let read = await readAfterBarrier("snapshot") { () async throws(RedisError) in
                let list = all ? try await state.camerasWithLatest() : missing
                return (list, try await state.snapshot(list))
            }
            guard let (list, found) = read else { return }
            for camera in list { cache.store(camera, found[camera]?.latest, following: hub.receives(camera)) }
            let names = all ? list : cameras
            let entries = names.map { camera in
                SnapshotEntry(camera: camera, latest: known[camera] ?? found[camera]?.latest, current: found[camera]?.current)
            }
            perform(hub.snapshotReady(id, entries: entries, all: all, generation: generation))
        }
    }

    /// How reads are retried while Redis is unreachable: the one back-off policy (50 ms
    /// doubling to 2 s, jittered so many clients' reads do not return in step).
    static let readRetry = ReconnectBackoff.Policy(initialDelay: .milliseconds(50), maximumDelay: .seconds(2))

    /// Runs `read` once the subscription changes queued so far are active, retrying with capped
    /// back-off while Redis is unreachable; nil once the gateway closed.
    private func readAfterBarrier<Value: Sendable>(_ what: String, _ read: @Sendable () async throws(RedisError) -> Value) async -> Value? {
        await subscriptions.barrier()
        var backoff = ReconnectBackoff(policy: Self.readRetry)
        while true {
            do throws(RedisError) {
                return try await read()
            } catch {
                if case .closed = error.kind { return nil }
                let delay = backoff.recordFailure()
                logger.debug("\(what) read failed; retrying in \(delay)", metadata: ["error": "\(error)"])
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    return nil // cancelled: the gateway is closing
                }
            }
        }
    }
}

import RedisClient
import Backoff

/// A batch written to a Redis Cluster: one `WriteTransaction` per camera (its keys and shard
/// channel share the slot of its hash tag) on that slot's primary — each primary's cameras
/// spread over its `connectionsPerNode` connections (lanes), one after another on a lane, all
/// lanes of all primaries at once: a transaction is two round trips, and a primary's cameras
/// share its lanes instead of waiting for each other. A camera whose slot is moving
/// (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN` from its reads, `WATCH` or `EXEC`, none of which
/// applied anything) is written again: on the node `MOVED` names, or after a pause while the
/// slot migrates. Any other failure fails
/// the batch, which `BatchWriter` writes again whole: the cameras that were written then skip
/// their messages by the Kafka offsets they stored, so no effect happens twice. That includes a
/// dead or unreachable primary (the map is read again from the other nodes first) and, with
/// `--min-replica-acks N`, a primary whose `WAIT` counted fewer than N replicas: written again,
/// its cameras skip their messages, and the `WAIT` after that write covers the first one.
///
/// `WAIT` runs once per lane that wrote, after its last camera, on that connection (it counts
/// everything its connection wrote before it); when a camera went over another connection or node
/// (a reconnect, a slot that moved), that connection gets its own `WAIT`.
struct ClusterBatchWrite: Sendable {
    let cluster: RedisClusterClient
    let transaction: WriteTransaction
    let partitionEnd: WriteTransaction.PartitionEnd?
    /// Told why a camera's `WAIT` came short (its primary's replicas), before the batch is
    /// written again.
    let shortfall: @Sendable (ReplicaShortfall) -> Void
    /// Tries per camera while its slot moves.
    var attempts = 8

    func write(_ plan: WritePlan) async throws(RedisError) -> WriteTransaction.Outcome {
        // By primary, then lane; cameras of a slot no primary serves now (nil) wait for the map
        // on their own.
        var groups: [RedisConfiguration.Address?: [WritePlan]] = [:]
        for camera in plan.perCamera() {
            groups[cluster.primary(forSlot: HashSlot.of(camera.latest[0].positionKey)), default: []].append(camera)
        }
        var lanes: [(lane: Int, cameras: [WritePlan])] = []
        for cameras in groups.values {
            let count = min(cameras.count, cluster.connectionsPerNode)
            for lane in 0..<count { lanes.append((lane, stride(from: lane, to: cameras.count, by: count).map { cameras[$0] })) }
        }
        let results = await withTaskGroup(of: Result<WriteTransaction.Outcome, RedisError>.self) { group in
            for (lane, cameras) in lanes {
                group.addTask {
                    var total = WriteTransaction.Outcome()
                    var written: [Connection] = []
                    do throws(RedisError) {
                        for camera in cameras {
                            let (outcome, connection) = try await writeCamera(camera, lane: lane)
                            total.add(outcome)
                            if let connection, !written.contains(connection) { written.append(connection) }
                        }
                        for connection in written { try await awaitReplicas(connection) }
                    } catch {
                        return .failure(error)
                    }
                    return .success(total)
                }
            }
            var all: [Result<WriteTransaction.Outcome, RedisError>] = []
            for await result in group { all.append(result) }
            return all
        }
        var total = WriteTransaction.Outcome()
        for result in results {
            switch result {
            case .success(let outcome): total.add(outcome)
            case .failure(let error): throw error
            }
        }
        return total
    }

    /// A connection to a primary that wrote cameras of the batch.
    struct Connection: Sendable, Equatable {
        let primary: RedisConfiguration.Address
        let lane: Int
        let serial: UInt64
    }

    /// The transaction of each camera: the batch's, without its `WAIT` (`awaitReplicas` waits
    /// once per connection instead).
    private var cameraTransaction: WriteTransaction {
        var each = transaction
        each.settings.minimumReplicaAcks = 0
        return each
    }

    /// `WAIT` for the replicas on a connection that wrote cameras; too few fail the batch (it is
    /// written again) after saying why; a connection gone fails it too (the primary may have
    /// died with what it wrote).
    private func awaitReplicas(_ connection: Connection) async throws(RedisError) {
        guard let wait = transaction.waitCommand else { return }
        let node = cluster.node(connection.primary, lane: connection.lane)
        let count = try await node.send(wait, onConnection: connection.serial)
        guard count < transaction.settings.minimumReplicaAcks else { return }
        shortfall(await ReplicaShortfall.read(from: node, required: transaction.settings.minimumReplicaAcks, acknowledged: count, server: connection.primary.description))
        throw WriteTransaction.PendingAcknowledgement(connection: connection.serial, acknowledged: count).error(transaction.settings)
    }

    /// One camera's transaction on its slot's primary, again while the slot moves (the client's
    /// one redirection rule; `ASK` is waited out, as a transaction cannot follow it).
    private func writeCamera(_ plan: WritePlan, lane: Int) async throws(RedisError) -> (WriteTransaction.Outcome, Connection?) {
        let slot = HashSlot.of(plan.latest[0].positionKey)
        var pauses = ReconnectBackoff(policy: cluster.pause)
        var last = RedisClusterClient.noOwner(slot, command: "EXEC")
        for _ in 0..<attempts {
            guard let primary = cluster.primary(forSlot: slot) else {
                last = try await cluster.awaitOwner(of: slot, pauses: &pauses) ?? last
                continue
            }
            do throws(RedisError) {
                let written = try await cameraTransaction.write(plan, on: cluster.node(primary, lane: lane), partitionEnd: partitionEnd)
                return (written.outcome, written.connection.map { Connection(primary: primary, lane: lane, serial: $0) })
            } catch {
                last = error
                switch await cluster.follow(error, slot: slot, from: primary, pauses: &pauses) {
                case .retry:
                    continue
                case .ask:
                    // Mid-migration: wait until the slot has moved (then MOVED names the owner).
                    try? await Task.sleep(for: pauses.recordFailure()) // try?: a cancelled pause only retries sooner
                case .giveUp:
                    throw error // the batch is written again whole (see the type)
                }
            }
        }
        throw last
    }
}

extension WriteTransaction.Outcome {
    /// Adds another write's counts (the cameras of one batch).
    mutating func add(_ other: Self) {
        published += other.published
        latestWritten += other.latestWritten
        latestSkipped += other.latestSkipped
        alertsPushed += other.alertsPushed
        alertsDeduplicated += other.alertsDeduplicated
        redeliveredSkipped += other.redeliveredSkipped
        offsetResets += other.offsetResets
        conflicts += other.conflicts
        commandErrors += other.commandErrors
    }
}

import RedisClient
import Backoff

/// A batch written to a Redis Cluster: one `WriteTransaction` per camera (its keys and shard
/// channel share the slot of its hash tag) on that slot's primary — each primary's cameras one
/// after another on its connection, all primaries at once. A camera whose slot is moving
/// (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN` from its reads, `WATCH` or `EXEC`, none of which
/// applied anything) is written again: on the node `MOVED` names, or after a pause while the
/// slot migrates. Any other failure fails
/// the batch, which `BatchWriter` writes again whole: the cameras that were written then skip
/// their messages by the Kafka offsets they stored, so no effect happens twice. That includes a
/// dead or unreachable primary (the map is read again from the other nodes first) and, with
/// `--min-replica-acks N`, a camera whose `WAIT` on its primary counted fewer than N replicas:
/// written again, it skips its messages, and the `WAIT` after that write covers the first one
/// (`WAIT` counts everything its connection wrote before it).
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
        // By primary; cameras of a slot no primary serves now (nil) wait for the map on their own.
        var groups: [RedisConfiguration.Address?: [WritePlan]] = [:]
        for camera in plan.perCamera() {
            groups[cluster.primary(forSlot: HashSlot.of(camera.latest[0].positionKey)), default: []].append(camera)
        }
        let results = await withTaskGroup(of: Result<WriteTransaction.Outcome, RedisError>.self) { group in
            for cameras in groups.values {
                group.addTask {
                    var total = WriteTransaction.Outcome()
                    for camera in cameras {
                        do throws(RedisError) {
                            total.add(try await writeCamera(camera))
                        } catch {
                            return .failure(error)
                        }
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

    /// One camera's transaction on its slot's primary, again while the slot moves (the client's
    /// one redirection rule; `ASK` is waited out, as a transaction cannot follow it).
    private func writeCamera(_ plan: WritePlan) async throws(RedisError) -> WriteTransaction.Outcome {
        let slot = HashSlot.of(plan.latest[0].positionKey)
        var pauses = ReconnectBackoff(policy: cluster.pause)
        var last = RedisClusterClient.noOwner(slot, command: "EXEC")
        for _ in 0..<attempts {
            guard let primary = cluster.primary(forSlot: slot) else {
                last = try await cluster.awaitOwner(of: slot, pauses: &pauses) ?? last
                continue
            }
            do throws(RedisError) {
                let written = try await transaction.write(plan, on: cluster.node(primary), partitionEnd: partitionEnd)
                guard let pending = written.pending else { return written.outcome }
                // On the primary, not on enough replicas: say why, then fail the batch (it is
                // written again, and this camera's messages are skipped then).
                shortfall(await ReplicaShortfall.read(from: cluster.node(primary), required: transaction.settings.minimumReplicaAcks,
                                                      acknowledged: pending.acknowledged, server: primary.description))
                throw pending.error(transaction.settings)
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

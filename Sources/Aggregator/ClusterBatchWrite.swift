import RedisClient
import KafkaClient
import Backoff

/// A batch written to a Redis Cluster, camera by camera (a camera's keys and shard channel share
/// the slot of its hash tag), each primary's cameras together and all primaries at once.
///
/// A round on a primary is two round trips whatever its number of cameras: one pipeline of every
/// camera's reads (`StoredBatchState`), then — planned by `WriteTransaction.commands`, the one
/// planner — one pipeline of one `CameraWriteScript` per camera, which applies a camera's writes
/// only if its state is still what they were planned from. A camera the script found changed (a
/// second writer), whose slot is moving (`MOVED`, `ASK`, `TRYAGAIN`, `CLUSTERDOWN`: nothing was
/// applied), whose primary lost the script (`NOSCRIPT`) or that needs more state first (the
/// broker's end of its partition, an upgrade's old markers) goes again in the next round, on
/// whichever primary serves it then. A broken connection or any other failure fails the batch,
/// which `BatchWriter` writes again whole: the cameras that were written then skip their messages
/// by the Kafka offsets they stored, so no effect happens twice. That includes a dead primary
/// (the map is read again from the other nodes first) and, with `--min-replica-acks N`, a
/// primary whose `WAIT` counted fewer than N replicas: written again, its cameras skip their
/// messages, and the `WAIT` after that write covers the first one.
///
/// `WAIT` runs once per connection that wrote, after the batch's last round: normally one per
/// touched primary (it counts everything its connection wrote before it).
struct ClusterBatchWrite: Sendable {
    let cluster: RedisClusterClient
    let transaction: WriteTransaction
    let partitionEnd: WriteTransaction.PartitionEnd?
    /// Told why a primary's `WAIT` came short (its replicas), before the batch is written again.
    let shortfall: @Sendable (ReplicaShortfall) -> Void
    /// Rounds before a camera that keeps moving, changing or waiting fails the batch.
    var attempts = 16

    /// A connection to a primary that wrote cameras of the batch.
    struct Connection: Sendable, Equatable {
        let primary: RedisConfiguration.Address
        let serial: UInt64
    }

    /// A camera still to write, with what its earlier rounds learned.
    struct Pending: Sendable {
        var plan: WritePlan
        /// Alerts (of `plan`) whose old markers are read too.
        var legacyChecks: [Int] = []
        var conflicts = 0
        var extraReads = 0
        var slot: Int { HashSlot.of(plan.latest[0].positionKey) }
    }

    /// What one round on one primary did.
    struct Round: Sendable {
        var outcome = WriteTransaction.Outcome()
        var connection: Connection?
        var again: [Pending] = []
        /// The reason of the last camera sent to another round (for the error if rounds run out).
        var lastRefusal: RedisError?
        /// A camera waits out a moving slot or a racing writer: pause before the next round.
        var pause = false
    }

    func write(_ plan: WritePlan) async throws(RedisError) -> WriteTransaction.Outcome {
        var pending = plan.perCamera().map { Pending(plan: $0) }
        var total = WriteTransaction.Outcome()
        var connections: [Connection] = []
        var pauses = ReconnectBackoff(policy: cluster.pause)
        var last: RedisError?
        var rounds = 0
        while !pending.isEmpty {
            rounds += 1
            guard rounds <= attempts else {
                throw last ?? RedisError(kind: .transactionConflict, message: "\(pending.count) cameras were still changing, moving or waiting after \(attempts) rounds", command: "EVALSHA")
            }
            // By primary; cameras of a slot no primary serves now wait for the map on their own.
            var groups: [RedisConfiguration.Address: [Pending]] = [:]
            var ownerless: [Pending] = []
            for camera in pending {
                if let primary = cluster.primary(forSlot: camera.slot) { groups[primary, default: []].append(camera) } else { ownerless.append(camera) }
            }
            if let first = ownerless.first {
                last = try await cluster.awaitOwner(of: first.slot, pauses: &pauses) ?? RedisClusterClient.noOwner(first.slot, command: "EVALSHA")
            }
            let results = await withTaskGroup(of: Result<Round, RedisError>.self) { group in
                for (primary, cameras) in groups {
                    group.addTask { await round(cameras, on: primary) }
                }
                var all: [Result<Round, RedisError>] = []
                for await result in group { all.append(result) }
                return all
            }
            pending = ownerless
            var pause = false
            for result in results {
                switch result {
                case .failure(let error):
                    throw error // the batch is written again whole (see the type)
                case .success(let round):
                    total.add(round.outcome)
                    if let connection = round.connection, !connections.contains(connection) { connections.append(connection) }
                    pending += round.again
                    last = round.lastRefusal ?? last
                    pause = pause || round.pause
                }
            }
            if pause, !pending.isEmpty { try? await Task.sleep(for: pauses.recordFailure()) } // try?: a cancelled pause only retries sooner
        }
        for connection in connections { try await awaitReplicas(connection) }
        return total
    }

    /// One round for `cameras` on their primary: reads, plans, scripts.
    private func round(_ cameras: [Pending], on primary: RedisConfiguration.Address) async -> Result<Round, RedisError> {
        let node = cluster.node(primary)
        var round = Round()
        do throws(RedisError) {
            // Round trip 1: every camera's reads (old markers, named by requestId and so in other
            // slots, are read apart: only while a camera upgrades from state without offsets).
            var reads = RedisPipeline()
            var counts: [Int] = []
            for camera in cameras {
                let mine = StoredBatchState.reads(camera.plan, legacyChecks: [])
                counts.append(mine.count)
                for command in mine.commands { _ = reads.append(RedisCommand<RedisReply>.raw(command)) }
            }
            let replies = try await node.execute(reads)
            let sha = try await node.scriptHash(CameraWriteScript.script)
            var scripts = RedisPipeline()
            var planned: [(camera: Pending, commands: [RedisArguments], outcome: WriteTransaction.Outcome)] = []
            var start = 0
            for (index, camera) in cameras.enumerated() {
                var read = Array(replies[start..<start + counts[index]])
                start += counts[index]
                if let refusal = Self.refusal(in: read) {
                    try await send(camera, again: refusal, from: primary, into: &round)
                    continue
                }
                if !camera.legacyChecks.isEmpty {
                    let markers = try await cluster.values(of: camera.legacyChecks.map { camera.plan.alerts[$0].legacyMarkerKey })
                    read.insert(.array(markers.map { $0.map(RedisReply.bulk) ?? .null }), at: read.count - 1) // before TIME, as StoredBatchState reads them
                }
                let (commands, outcome) = try transaction.commands(for: camera.plan, readReplies: read, legacyChecks: camera.legacyChecks, confirmsResets: partitionEnd != nil)
                if !outcome.endsToConfirm.isEmpty || !outcome.legacyChecksNeeded.isEmpty {
                    round.again.append(try await learnMore(camera, outcome))
                    continue
                }
                _ = scripts.append(try CameraWriteScript.call(sha: sha, camera: camera.plan.latest[0], read: read, commands: commands))
                planned.append((camera, commands, outcome))
            }
            guard !planned.isEmpty else { return .success(round) }
            // Round trip 2: the scripts, on one connection (the one `WAIT` counts).
            let (answers, serial) = try await node.executeReportingConnection(scripts)
            for (index, item) in planned.enumerated() {
                do throws(RedisError) {
                    switch try CameraWriteScript.answer(answers[index]) {
                    case .applied(let replies):
                        var outcome = item.outcome
                        outcome.conflicts = item.camera.conflicts
                        outcome.commandErrors = WriteTransaction.errors(in: replies, commands: item.commands)
                        round.outcome.add(outcome)
                        round.connection = Connection(primary: primary, serial: serial)
                    case .changed:
                        var camera = item.camera
                        camera.conflicts += 1
                        guard camera.conflicts < transaction.maximumAttempts else {
                            throw RedisError(kind: .transactionConflict, message: "camera \(camera.plan.latest[0].positionKey) kept changing during \(camera.conflicts) attempts", command: "EVALSHA")
                        }
                        round.again.append(camera)
                        round.pause = true
                    }
                } catch where error.serverCode == .noScript {
                    // A promoted replica or a restarted primary without the script: loaded anew.
                    _ = try await node.load(CameraWriteScript.script)
                    round.again.append(item.camera)
                } catch where [.moved, .ask, .tryAgain, .clusterDown].contains(error.serverCode) {
                    // The slot moved between the reads and the script: nothing was applied.
                    try await send(item.camera, again: error, from: primary, into: &round)
                }
            }
        } catch {
            // Nothing in flight can be told apart any more: follow the node's fate, fail the batch.
            var pauses = ReconnectBackoff(policy: cluster.pause)
            _ = await cluster.follow(error, slot: cameras.first?.slot ?? 0, from: primary, pauses: &pauses)
            return .failure(error)
        }
        return .success(round)
    }

    /// A redirection or cluster state among a camera's read replies (nothing was applied).
    private static func refusal(in replies: [RedisReply]) -> RedisError? {
        for reply in replies {
            guard case .error(let message) = reply else { continue }
            let error = RedisError(kind: .server, message: message, command: "the camera's reads")
            if [.moved, .ask, .tryAgain, .clusterDown].contains(error.serverCode) { return error }
        }
        return nil
    }

    /// Sends a camera to the next round after a redirection, following it (the one rule).
    private func send(_ camera: Pending, again refusal: RedisError, from primary: RedisConfiguration.Address, into round: inout Round) async throws(RedisError) {
        var pauses = ReconnectBackoff(policy: cluster.pause)
        switch await cluster.follow(refusal, slot: camera.slot, from: primary, pauses: &pauses) {
        case .retry:
            break
        case .ask:
            round.pause = true // mid-migration: wait until the slot has moved (then MOVED names the owner)
        case .giveUp:
            throw refusal
        }
        round.again.append(camera)
        round.lastRefusal = refusal
    }

    /// What a camera's plan asked for before it can be written: the broker's end of a partition
    /// (to tell a recreated topic from a redelivery), or the old markers of an upgrade.
    private func learnMore(_ camera: Pending, _ outcome: WriteTransaction.Outcome) async throws(RedisError) -> Pending {
        var camera = camera
        camera.extraReads += 1
        guard camera.extraReads <= 4 else {
            throw RedisError(kind: .deferred, message: "camera \(camera.plan.latest[0].positionKey) still needed more state after \(camera.extraReads) extra reads (old alert markers, partition ends); nothing was applied", command: "EVALSHA")
        }
        if let partitionEnd, !outcome.endsToConfirm.isEmpty {
            var ends: [KafkaTopicPartition: Int64] = [:]
            for (index, storedOffset) in outcome.endsToConfirm {
                guard let origin = camera.plan.publishes[index].origin else { continue }
                let partition = KafkaTopicPartition(topic: origin.topic, partition: origin.partition)
                if ends[partition] == nil {
                    guard let end = await partitionEnd(partition) else {
                        throw RedisError(kind: .deferred, message: "the end of \(partition) could not be asked of the broker, to tell a recreated topic from a redelivery (stored offset \(storedOffset)); nothing was applied", command: "EVALSHA")
                    }
                    ends[partition] = end
                }
                camera.plan.publishes[index].origin?.highWatermark = ends[partition]
                camera.plan.publishes[index].origin?.endConfirmedFor = storedOffset
            }
        }
        if !outcome.legacyChecksNeeded.isEmpty {
            camera.legacyChecks = Array(Set(camera.legacyChecks + outcome.legacyChecksNeeded)).sorted()
        }
        return camera
    }

    /// `WAIT` for the replicas on a connection that wrote cameras; too few fail the batch (it is
    /// written again) after saying why; a connection gone fails it too (the primary may have
    /// died with what it wrote).
    private func awaitReplicas(_ connection: Connection) async throws(RedisError) {
        guard let wait = transaction.waitCommand else { return }
        let node = cluster.node(connection.primary)
        let count = try await node.send(wait, onConnection: connection.serial)
        guard count < transaction.settings.minimumReplicaAcks else { return }
        shortfall(await ReplicaShortfall.read(from: node, required: transaction.settings.minimumReplicaAcks, acknowledged: count, server: connection.primary.description))
        throw WriteTransaction.PendingAcknowledgement(connection: connection.serial, acknowledged: count).error(transaction.settings)
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

public import RedisClient
public import KafkaClient
public import TrafficModel
import Backoff

/// Applies a `WritePlan` to Redis atomically: one optimistic transaction of plain commands,
/// each Kafka message's effects applied once.
///
/// Round trip 1 watches and reads the state the writes depend on (`StoredBatchState`): each
/// camera's position hash (result counter, epoch, and the Kafka `(partition, offset)` it applied
/// last), the stored `latest` timestamps, whether each alert's requestId alerted already, and the
/// server's clock. Round trip 2 sends, inside `MULTI` … `EXEC`:
///
/// - nothing for a message its camera applied already (`AppliedOffset`: same partition, offset at
///   or below the stored one): a redelivery — a killed member's messages read again by its
///   successor, a batch written again after its `EXEC` reply was lost — is counted
///   (`HINCRBY … redelivered_skipped`) and changes nothing else;
/// - per camera with new messages, the counter advanced by their count and the Kafka pair of the
///   last one (`HSET … offset epoch kafka_partition kafka_offset`), before any publish; when
///   there is no counter (first result, or Redis lost it) the camera gets a new epoch (the server
///   time in µs) and its old history is dropped (`DEL`), because offsets of the old epoch mean
///   nothing in the new one;
/// - per new result, in input order, the payload with its position spliced in first (see
///   `ResultPosition`), appended to the camera's history (`XADD … MAXLEN ~ historyLength
///   <offset>-0 r <body>`) and published (`PUBLISH camera:<id> <body>`);
/// - per frame image taken out of a result, `SET frame:<camera>:<requestId> <bytes> EX <latest TTL>`;
/// - per camera, `latest` and its timestamp (`SETEX`), the newest new result, only when the
///   stored timestamp is not newer;
/// - per alert of a new result whose requestId has not alerted on its camera, `LPUSH` to the
///   alert list and of the requestId to `camera:<id>:alerted`; then `LTRIM` both.
///
/// If any watched key changes between the two round trips (another aggregator wrote the same
/// camera), `EXEC` applies nothing and the batch is read and planned again, so two writers
/// holding the same messages apply each once. Keys are computed in the client, so the
/// aggregator needs a single Redis (not Cluster).
///
/// This replaced a Lua script doing the same: plain commands cost Redis about half the time per
/// result (no Lua strings, no `redis.call` per command); see docs/benchmarks.md.
public struct WriteTransaction: Sendable {
    /// The limits every batch is written with.
    public struct Settings: Sendable, Equatable {
        public var latestTTLSeconds = 300
        public var alertListLength = 100
        /// RequestIds kept per camera in `camera:<id>:alerted`: a requestId produced again (as
        /// another Kafka message) within the camera's last this many alerts pushes no second one.
        public var alertDedupeWindow = 100
        public var historyLength = 1_000
        /// Replicas that must have a batch before it counts as written (`WAIT` after `EXEC`, in
        /// the same round trip); 0 does not wait. A failover can then promote a replica without
        /// losing an acknowledged batch.
        public var minimumReplicaAcks = 0
        /// How long `WAIT` may take; fewer acknowledgements by then fail the batch (retried).
        public var replicaAckTimeout: Duration = .seconds(2)
        /// Whether a message's Kafka offset is checked against the one its camera applied (on in
        /// the product; off only to measure what the check costs).
        public var checksAppliedOffsets = true
        /// `PUBLISH`, or `SPUBLISH` on a Redis Cluster (the camera's shard channel, in its slot).
        public var publishCommand = "PUBLISH"
        /// On a Redis Cluster: the names by which a camera whose counter starts (its first
        /// result, or a new epoch) is announced in the same transaction
        /// (`KeySchema.camerasAnnounced`, `announcement(of:)`).
        public var announcing: KeySchema?

        public init() {}
    }

    /// What one applied batch did.
    public struct Outcome: Sendable, Equatable {
        public var published = 0
        public var latestWritten = 0
        public var alertsPushed = 0
        /// Cameras whose newest new result is older than their stored `latest` (left as it is).
        public var latestSkipped = 0
        /// Alerts of new messages not pushed: their requestId had alerted on the camera already
        /// (or earlier in the batch).
        public var alertsDeduplicated = 0
        /// Messages already applied (at or below their camera's stored Kafka offset): skipped.
        public var redeliveredSkipped = 0
        /// Messages applied although their camera's stored offset was at or past the partition's
        /// high watermark (the topic was recreated or truncated): the pair was replaced.
        public var offsetResets = 0
        /// Attempts that found a watched key changed and started over.
        public var conflicts = 0
        /// Error replies of commands inside the applied transaction. Redis ran every other
        /// command, so the batch is not retried (that would publish it again); these come from
        /// data the aggregator does not expect (a key of the wrong type, a history stream ahead
        /// of its counter) and need an operator. Each names the command it answered.
        public var commandErrors: [RedisError] = []
        /// Alerts (indices into the plan) of Kafka messages whose camera is upgrading from state
        /// written before the applied offset existed (`StoredBatchState.Camera.upgrading`): their
        /// legacy markers are read first, and the commands are empty until they were.
        var legacyChecksNeeded: [Int] = []
        /// Messages (publish index → the stored offset compared with) whose partition's end must
        /// be asked of the broker before that stored offset, past the consumer's watermark,
        /// counts as a reset; the commands are empty until it was.
        var endsToConfirm: [Int: Int64] = [:]

        public init(published: Int = 0, latestWritten: Int = 0, latestSkipped: Int = 0, alertsPushed: Int = 0, alertsDeduplicated: Int = 0,
                    redeliveredSkipped: Int = 0, offsetResets: Int = 0, conflicts: Int = 0, commandErrors: [RedisError] = []) {
            (self.published, self.latestWritten, self.latestSkipped, self.alertsPushed, self.alertsDeduplicated) = (published, latestWritten, latestSkipped, alertsPushed, alertsDeduplicated)
            (self.redeliveredSkipped, self.offsetResets, self.conflicts, self.commandErrors) = (redeliveredSkipped, offsetResets, conflicts, commandErrors)
        }

        public static func == (a: Outcome, b: Outcome) -> Bool {
            (a.published, a.latestWritten, a.latestSkipped, a.alertsPushed, a.alertsDeduplicated) == (b.published, b.latestWritten, b.latestSkipped, b.alertsPushed, b.alertsDeduplicated)
                && (a.conflicts, a.redeliveredSkipped, a.offsetResets) == (b.conflicts, b.redeliveredSkipped, b.offsetResets)
                && a.commandErrors.map(\.description) == b.commandErrors.map(\.description)
        }
    }

    /// How often a batch is re-read after conflicts before a `.transactionConflict` error is
    /// left to the caller's back-off.
    var maximumAttempts = 32
    /// The pause before reading again after a conflict: from ~150 µs, growing to 8 ms, widely
    /// jittered, so writers racing on the same cameras fall out of step.
    var conflictBackoff = ReconnectBackoff.Policy(initialDelay: .microseconds(150), maximumDelay: .milliseconds(8), multiplier: 1.3, jitter: 0.6)

    public var settings: Settings

    public init(settings: Settings = Settings()) {
        self.settings = settings
    }

    /// A partition's current end (high watermark) asked of the broker; nil when it cannot tell.
    public typealias PartitionEnd = @Sendable (KafkaTopicPartition) async -> Int64?

    /// Writes the plan; when another client changed a watched key meanwhile, reads and tries
    /// again (after a short random pause), up to `maximumAttempts` times.
    /// `beforeCommit` runs on the Redis client's thread right before each `MULTI` … `EXEC` is
    /// sent (load generators use it to time publishes).
    public func apply(_ plan: WritePlan, on redis: RedisClient, beforeCommit: (@Sendable () -> Void)? = nil, partitionEnd: PartitionEnd? = nil) async throws(RedisError) -> Outcome {
        let written = try await write(plan, on: redis, beforeCommit: beforeCommit, partitionEnd: partitionEnd)
        if let pending = written.pending { throw pending.error(settings) }
        return written.outcome
    }

    /// Applies the plan (see `apply`) and reports whether the required replicas acknowledged it,
    /// instead of throwing when they did not. `partitionEnd` confirms a topic reset that a
    /// message's cached watermark suggests (nil: the cached one is taken as it is).
    public func write(_ plan: WritePlan, on redis: RedisClient, beforeCommit: (@Sendable () -> Void)? = nil, partitionEnd: PartitionEnd? = nil) async throws(RedisError) -> Written {
        if plan.isEmpty { return Written(outcome: Outcome()) }
        var plan = plan
        var legacyChecks: [Int] = []
        var conflictPauses = ReconnectBackoff(policy: conflictBackoff)
        var conflicts = 0
        // Besides conflicts, a batch is read again at most once per kind of extra state: the
        // legacy markers of an upgrade, the broker's ends of the partitions; more is a bug.
        var extraReads = 0
        while conflicts < maximumAttempts {
            guard extraReads <= 4 else {
                throw RedisError(kind: .deferred, message: "the batch still needed more state after \(extraReads) extra reads (old alert markers, partition ends); nothing was applied", command: "EXEC")
            }
            let transaction: RedisTransactionResult<(Outcome, [RedisArguments])>?
            do {
                let (checked, current, confirms) = (legacyChecks, plan, partitionEnd != nil)
                transaction = try await redis.transaction(watching: StoredBatchState.watchedKeys(current, legacyChecks: checked), reads: StoredBatchState.reads(current, legacyChecks: checked),
                                                          after: waitCommand?.arguments) { replies throws(RedisError) in
                    let (commands, outcome) = try self.commands(for: current, readReplies: replies, legacyChecks: checked, confirmsResets: confirms)
                    if !commands.isEmpty { beforeCommit?() }
                    return (commands, (outcome, commands)) // the commands again (shared storage), to name failures
                }
            } catch where error.kind == .notAtomic {
                // The writes ran, outside a transaction: report, do not apply them again.
                return Written(outcome: Outcome(commandErrors: [error]))
            }
            guard let result = transaction else {
                // Another writer got there first: read again after a short random pause, so
                // writers racing on the same cameras fall out of step instead of colliding again.
                conflicts += 1
                try? await Task.sleep(for: conflictPauses.recordFailure()) // try?: a cancelled pause only retries sooner
                continue
            }
            var outcome = result.value.0
            if let partitionEnd, !outcome.endsToConfirm.isEmpty {
                // A stored offset at or past a cached watermark: ask the broker for the end now
                // (another member may have read further), then read and plan again. The answer
                // holds only against the stored offset read before it was asked.
                extraReads += 1
                var ends: [KafkaTopicPartition: Int64] = [:]
                for (index, storedOffset) in outcome.endsToConfirm {
                    guard let origin = plan.publishes[index].origin else { continue }
                    let partition = KafkaTopicPartition(topic: origin.topic, partition: origin.partition)
                    if ends[partition] == nil {
                        guard let end = await partitionEnd(partition) else {
                            throw RedisError(kind: .deferred, message: "the end of \(partition) could not be asked of the broker, to tell a recreated topic from a redelivery (stored offset \(storedOffset)); nothing was applied", command: "EXEC")
                        }
                        ends[partition] = end
                    }
                    plan.publishes[index].origin?.highWatermark = ends[partition]
                    plan.publishes[index].origin?.endConfirmedFor = storedOffset
                }
                continue
            }
            if !outcome.legacyChecksNeeded.isEmpty {
                // Alerts of cameras upgrading from state without the applied offset: read the
                // old markers too, then plan again.
                extraReads += 1
                legacyChecks = Array(Set(legacyChecks + outcome.legacyChecksNeeded)).sorted()
                continue
            }
            // Every message is either applied or counted as skipped (HINCRBY on its camera's
            // position), so a batch always writes, and its WAIT also covers the other writer's
            // batch this one found applied. (Empty commands would mean nothing to wait for.)
            let acknowledged = result.value.1.isEmpty ? nil : try replicaAcks(result.afterReply)
            outcome.conflicts = conflicts
            outcome.commandErrors = Self.errors(in: result.replies, commands: result.value.1)
            let pending = acknowledged.map { PendingAcknowledgement(connection: result.connection, acknowledged: $0) }
            return Written(outcome: outcome, pending: pending, connection: result.connection)
        }
        throw RedisError(kind: .transactionConflict, message: "watched keys kept changing during \(conflicts) attempts", command: "EXEC")
    }

    /// Every key whose change must abort the batch (see `StoredBatchState`).
    func watchedKeys(_ plan: WritePlan, legacyChecks: [Int] = []) -> [String] {
        StoredBatchState.watchedKeys(plan, legacyChecks: legacyChecks)
    }

    /// Round trip 1 (see `StoredBatchState`).
    func reads(_ plan: WritePlan, legacyChecks: [Int] = []) -> RedisPipeline {
        StoredBatchState.reads(plan, legacyChecks: legacyChecks)
    }

    /// Round trip 2: the commands that apply `plan` given what round trip 1 read, and what they
    /// will do. Public for benchmarks of the aggregator's CPU work; `readReplies` must answer
    /// `reads(plan, legacyChecks:)`.
    /// `confirmsResets`: a reset suggested by a message's cached watermark is first confirmed
    /// (`Outcome.endsToConfirm`), as `write` does with its `partitionEnd`.
    public func commands(for plan: WritePlan, readReplies: [RedisReply], legacyChecks: [Int] = [], confirmsResets: Bool = false) throws(RedisError) -> (commands: [RedisArguments], value: Outcome) {
        let stored = try StoredBatchState(replies: readReplies, plan: plan, legacyChecks: legacyChecks)
        let cameraCount = plan.latest.count
        var commands: [RedisArguments] = []
        commands.reserveCapacity(cameraCount * 4 + plan.publishes.count * 2 + plan.alerts.count * 3)
        var outcome = Outcome()

        // Each camera's stored Kafka pair decides which of its messages are new (`AppliedOffset`):
        // a redelivered one writes nothing — no history entry, PUBLISH, `latest` or alert. Each
        // applied message moves the pair on, so a message in the batch twice is applied once.
        var applied = [Bool](repeating: true, count: plan.publishes.count)
        var newPair = [AppliedOffset?](repeating: nil, count: cameraCount)
        var skipped = [Int](repeating: 0, count: cameraCount)
        for (index, publish) in plan.publishes.enumerated() where settings.checksAppliedOffsets {
            guard let origin = publish.origin else { continue }
            let current = newPair[publish.cameraSlot] ?? stored.cameras[publish.cameraSlot].applied
            switch AppliedOffset.verdict(for: origin, stored: current) {
            case .skip:
                applied[index] = false
                skipped[publish.cameraSlot] += 1
                outcome.redeliveredSkipped += 1
                continue
            case .applyAfterReset where confirmsResets && origin.endConfirmedFor != current?.offset:
                // The consumer's watermark may be older than the stored offset's message: ask
                // the broker before taking it for a recreated topic.
                outcome.endsToConfirm[index] = current?.offset
                continue
            case .applyAfterReset:
                outcome.offsetResets += 1
            case .apply:
                break
            }
            newPair[publish.cameraSlot] = AppliedOffset(topic: origin.topic, partition: origin.partition, offset: origin.offset)
        }
        if !outcome.endsToConfirm.isEmpty { return ([], outcome) }

        // A camera left by a version before the applied offset may get messages that version
        // applied (and marked with `alerted:<requestId>`) but did not commit: read those markers
        // before alerting. Its messages come in order, so the first alert without a marker shows
        // the rest are new: the camera is then done upgrading.
        outcome.legacyChecksNeeded = plan.alerts.indices.filter { index in
            let publish = plan.publishes[plan.alerts[index].publishIndex]
            return settings.checksAppliedOffsets && applied[plan.alerts[index].publishIndex] && publish.origin != nil
                && stored.cameras[publish.cameraSlot].upgrading && !legacyChecks.contains(index)
        }
        if !outcome.legacyChecksNeeded.isEmpty { return ([], outcome) }
        var upgrading = stored.cameras.map { settings.checksAppliedOffsets && $0.upgrading }
        for index in legacyChecks where !stored.legacyMarked[index] {
            upgrading[plan.publishes[plan.alerts[index].publishIndex].cameraSlot] = false
        }

        var counts = [Int](repeating: 0, count: cameraCount)
        // Per camera, the newest applied result becomes `latest` (on a tie, the later one).
        var newest = [Int?](repeating: nil, count: cameraCount)
        for (index, publish) in plan.publishes.enumerated() where applied[index] {
            let slot = publish.cameraSlot
            counts[slot] += 1
            if let current = newest[slot], plan.publishes[current].timestampMilliseconds > publish.timestampMilliseconds { continue }
            newest[slot] = index
        }

        // Counters first: should EXEC fail halfway, no offset it handed out is handed out again.
        var nextOffset = [Int64](repeating: 0, count: cameraCount)
        var prefixTails = [[UInt8]](repeating: [], count: cameraCount)
        for (slot, camera) in plan.latest.enumerated() {
            if skipped[slot] > 0 {
                // Counted where `stats` finds it; writing the watched hash also makes a racing
                // writer that read it before re-read.
                commands.append(RedisCommand.hincrby(camera.positionKey, field: "redelivered_skipped", by: skipped[slot]).arguments)
            }
            guard counts[slot] > 0 else { continue }
            let (offset, epoch) = stored.cameras[slot].counter ?? (0, stored.newEpoch)
            if stored.cameras[slot].counter == nil {
                commands.append(RedisCommand.del([camera.historyKey]).arguments)
                if let keys = settings.announcing { commands.append(RedisCommand.publish(keys.camerasAnnounced, keys.announcement(of: camera.camera)).arguments) }
            }
            nextOffset[slot] = offset
            var fields = [("offset", String(offset + Int64(counts[slot]))), ("epoch", epoch)]
            if let pair = newPair[slot] { fields += [("kafka_partition", String(pair.partition)), ("kafka_offset", String(pair.offset)), ("kafka_topic", pair.topic)] }
            // The flag outlives the missing pair: set with the camera's first stored offset.
            if upgrading[slot], newPair[slot] != nil, !stored.cameras[slot].legacyFlag { fields.append(("legacy_markers", "1")) }
            commands.append(RedisCommand.hset(camera.positionKey, fields).arguments)
            if !upgrading[slot], stored.cameras[slot].legacyFlag { commands.append(RedisCommand.hdel(camera.positionKey, fields: ["legacy_markers"]).arguments) }
            prefixTails[slot] = ResultPosition.wireEpochKey + Array(epoch.utf8) + Array(#""},"#.utf8)
        }

        // Frame images before the results that reference them, with the results' TTL.
        let ttl = String(settings.latestTTLSeconds)
        for frame in plan.frames where applied[frame.publishIndex] {
            var set = RedisArguments(reservingBytes: frame.bytes.count + frame.key.utf8.count + 16, arguments: 5)
            set.append("SET")
            set.append(frame.key)
            set.append(frame.bytes)
            set.append("EX")
            set.append(ttl)
            commands.append(set)
        }

        var bodies = [[UInt8]](repeating: [], count: plan.publishes.count)
        let historyLength = String(settings.historyLength)
        for (index, publish) in plan.publishes.enumerated() where applied[index] {
            let slot = publish.cameraSlot
            let camera = plan.latest[slot]
            nextOffset[slot] += 1
            let offset = String(nextOffset[slot])
            var body: [UInt8] = []
            body.reserveCapacity(ResultPosition.wireHead.count + offset.utf8.count + prefixTails[slot].count + publish.payload.count)
            body += ResultPosition.wireHead
            body += offset.utf8
            body += prefixTails[slot]
            body += publish.payload.dropFirst() // the payload without its opening brace
            var xadd = RedisArguments(reservingBytes: body.count + camera.historyKey.utf8.count + 40, arguments: 8)
            xadd.append("XADD")
            xadd.append(camera.historyKey)
            xadd.append("MAXLEN")
            xadd.append("~")
            xadd.append(historyLength)
            xadd.append(offset + "-0")
            xadd.append("r")
            xadd.append(body)
            commands.append(xadd)
            var publishCommand = RedisArguments(reservingBytes: body.count + camera.channel.utf8.count + 7, arguments: 3)
            publishCommand.append(settings.publishCommand)
            publishCommand.append(camera.channel)
            publishCommand.append(body)
            commands.append(publishCommand)
            bodies[index] = body
            outcome.published += 1
        }

        for (slot, camera) in plan.latest.enumerated() {
            guard let index = newest[slot] else { continue } // every result of the camera was a redelivery
            let timestamp = plan.publishes[index].timestampMilliseconds
            // `latest` never goes back in time: an unreadable stored timestamp counts as absent.
            if let storedTimestamp = stored.cameras[slot].latestTimestamp, storedTimestamp > timestamp {
                outcome.latestSkipped += 1
                continue
            }
            var latest = RedisArguments(reservingBytes: bodies[index].count + camera.key.utf8.count + 16, arguments: 4)
            latest.append("SETEX")
            latest.append(camera.key)
            latest.append(ttl)
            latest.append(bodies[index])
            commands.append(latest)
            commands.append(RedisCommand.setex(camera.timestampKey, seconds: settings.latestTTLSeconds, String(timestamp)).arguments)
            outcome.latestWritten += 1
        }

        // An alert is pushed once per requestId and camera: one in the camera's `alerted` list
        // (or marked by an older version, or pushed earlier in this batch) is not pushed again;
        // a redelivered message's alert is not even considered.
        var pushed = Set<String>()
        var trimmed: [(list: String, alerted: String)] = []
        for (index, alert) in plan.alerts.enumerated() where applied[alert.publishIndex] {
            guard !stored.alertedBefore[index], !stored.legacyMarked[index], pushed.insert(alert.alertedKey + " " + alert.requestId).inserted else {
                outcome.alertsDeduplicated += 1
                continue
            }
            var push = RedisArguments(reservingBytes: bodies[alert.publishIndex].count + alert.listKey.utf8.count + 6, arguments: 3)
            push.append("LPUSH")
            push.append(alert.listKey)
            push.append(bodies[alert.publishIndex])
            commands.append(push)
            commands.append(RedisCommand.lpush(alert.alertedKey, [Array(alert.requestId.utf8)]).arguments)
            if !trimmed.contains(where: { $0.list == alert.listKey }) { trimmed.append((alert.listKey, alert.alertedKey)) }
            outcome.alertsPushed += 1
        }
        for (list, alerted) in trimmed {
            commands.append(RedisCommand.ltrim(list, start: 0, stop: settings.alertListLength - 1).arguments)
            commands.append(RedisCommand.ltrim(alerted, start: 0, stop: settings.alertDedupeWindow - 1).arguments)
        }
        return (commands, outcome)
    }

    /// The error replies inside EXEC's replies, each with the command it answered.
    static func errors(in replies: [RedisReply], commands: [RedisArguments]) -> [RedisError] {
        var errors: [RedisError] = []
        for (index, reply) in replies.enumerated() {
            guard case .error(let message) = reply else { continue }
            let parts = index < commands.count ? commands[index].parts.prefix(2).map { String(decoding: $0, as: UTF8.self) } : ["command \(index)"]
            errors.append(RedisError(kind: .server, message: message, command: parts.joined(separator: " ")))
        }
        return errors
    }
}

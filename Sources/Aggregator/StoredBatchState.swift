import RedisClient

/// What round trip 1 of a `WriteTransaction` reads, and what it read, decoded: the stored state
/// a batch's writes depend on.
///
/// Per camera of the batch: `HMGET camera:<id>:position offset epoch kafka_partition
/// kafka_offset legacy_markers kafka_topic` (its result counter, the Kafka message it applied
/// last, and whether an upgrade's old markers still matter); then one `MGET` of
/// the cameras' `latest_ts`; per alert, `LPOS camera:<id>:alerted <requestId>` (did that
/// requestId alert already); for the alerts named in `legacyChecks`, one `MGET` of the markers
/// older versions wrote; last `TIME`, the epoch of a camera whose counter starts over.
///
/// Watched: the position hashes and `latest_ts` keys (and the legacy markers read). The
/// `alerted` lists need no watch: they are only written together with their camera's position
/// hash, so a concurrent change to one aborts the transaction through the other.
struct StoredBatchState: Sendable {
    public struct Camera: Sendable, Equatable {
        /// The last position handed out and its epoch; nil when absent or not sane (the counter
        /// starts over in a new epoch).
        public var counter: (offset: Int64, epoch: String)?
        /// The Kafka message the camera applied last; nil when none was stored (a new camera, or
        /// state written before the applied offset existed).
        public var applied: AppliedOffset?
        /// The stored timestamp of `latest`; nil when absent or unreadable.
        public var latestTimestamp: Int64?
        /// The `legacy_markers` flag: written by this version on a camera it found in the state
        /// of a version before the applied offset, kept until an alert without an old marker
        /// shows that the messages that version applied are behind.
        public var legacyFlag: Bool

        /// The camera's messages may have been applied by a version before the applied offset
        /// (which marked each alert with `alerted:<requestId>`): a counter without a stored pair,
        /// or the flag still set. Its alerts are then checked against those markers.
        public var upgrading: Bool { legacyFlag || (counter != nil && applied == nil) }

        public static func == (a: Camera, b: Camera) -> Bool {
            a.counter?.offset == b.counter?.offset && a.counter?.epoch == b.counter?.epoch && a.applied == b.applied
                && a.latestTimestamp == b.latestTimestamp && a.legacyFlag == b.legacyFlag
        }
    }

    public var cameras: [Camera]
    /// Per alert of the plan: its requestId is in the camera's `alerted` list already.
    public var alertedBefore: [Bool]
    /// Per alert of the plan: a legacy `alerted:<requestId>` marker exists (false for alerts
    /// not checked).
    public var legacyMarked: [Bool]
    /// A new epoch from the server's clock: seconds followed by six digits of microseconds.
    public var newEpoch: String

    /// The position hash fields read per camera, in reply order.
    static let positionFields = ["offset", "epoch", "kafka_partition", "kafka_offset", "legacy_markers", "kafka_topic"]

    /// Every key whose change must abort the batch.
    static func watchedKeys(_ plan: WritePlan, legacyChecks: [Int]) -> [String] {
        plan.latest.map(\.positionKey) + plan.latest.map(\.timestampKey) + legacyChecks.map { plan.alerts[$0].legacyMarkerKey }
    }

    /// Round trip 1 (see the type's description).
    static func reads(_ plan: WritePlan, legacyChecks: [Int]) -> RedisPipeline {
        var reads = RedisPipeline(capacity: plan.latest.count + plan.alerts.count + 3)
        for camera in plan.latest {
            reads.append(.hmget(camera.positionKey, fields: positionFields))
        }
        reads.append(.mget(plan.latest.map(\.timestampKey)))
        for alert in plan.alerts {
            reads.append(.lpos(alert.alertedKey, alert.requestId))
        }
        if !legacyChecks.isEmpty {
            reads.append(.mget(legacyChecks.map { plan.alerts[$0].legacyMarkerKey }))
        }
        reads.append(.time())
        return reads
    }

    /// Decodes the replies to `reads(plan, legacyChecks:)`; an error reply or a reply of the
    /// wrong shape throws (nothing is written from state that could not be read).
    init(replies: [RedisReply], plan: WritePlan, legacyChecks: [Int]) throws(RedisError) {
        let cameraCount = plan.latest.count
        let expected = cameraCount + 1 + plan.alerts.count + (legacyChecks.isEmpty ? 0 : 1) + 1
        guard replies.count == expected else {
            throw RedisError(kind: .unexpectedReply, message: "expected \(expected) read replies, got \(replies.count)", command: "the transaction's reads")
        }
        for reply in replies {
            if case .error(let message) = reply { throw RedisError(kind: .server, message: message, command: "the transaction's reads") }
        }
        let timestamps = try Self.items(replies[cameraCount], count: cameraCount)
        cameras = []
        cameras.reserveCapacity(cameraCount)
        for slot in 0..<cameraCount {
            let fields = try Self.items(replies[slot], count: Self.positionFields.count)
            cameras.append(Camera(counter: Self.counter(offset: fields[0], epoch: fields[1]),
                          applied: AppliedOffset.parse(topic: fields[5], partition: fields[2], offset: fields[3]),
                          latestTimestamp: Self.integer(timestamps[slot]), legacyFlag: fields[4] != nil))
        }
        alertedBefore = []
        alertedBefore.reserveCapacity(plan.alerts.count)
        for index in 0..<plan.alerts.count {
            switch replies[cameraCount + 1 + index] {
            case .integer: alertedBefore.append(true)
            case .null: alertedBefore.append(false)
            case let other: throw RedisError(kind: .unexpectedReply, message: "LPOS answered \(other)", command: "LPOS \(plan.alerts[index].alertedKey)")
            }
        }
        legacyMarked = [Bool](repeating: false, count: plan.alerts.count)
        if !legacyChecks.isEmpty {
            let markers = try Self.items(replies[cameraCount + 1 + plan.alerts.count], count: legacyChecks.count)
            for (position, alert) in legacyChecks.enumerated() where markers[position] != nil { legacyMarked[alert] = true }
        }
        let time = try RedisCommand.time().value(from: replies[expected - 1])
        let digits = String(time.microseconds)
        newEpoch = String(time.seconds) + String(repeating: "0", count: max(0, 6 - digits.count)) + digits
    }

    /// A stored counter, kept only if it is sane: the epoch goes into JSON text unescaped, so it
    /// must be plain ASCII letters and digits (the aggregator writes digits).
    static func counter(offset: [UInt8]?, epoch: [UInt8]?) -> (offset: Int64, epoch: String)? {
        guard let offset = integer(offset), offset >= 1, let epoch, (1...64).contains(epoch.count),
              epoch.allSatisfy({ (48...57).contains($0) || (65...90).contains($0) || (97...122).contains($0) }) else { return nil }
        return (offset, String(decoding: epoch, as: UTF8.self))
    }

    private static func integer(_ bytes: [UInt8]?) -> Int64? {
        bytes.flatMap { Int64(String(decoding: $0, as: UTF8.self)) }
    }

    /// The elements of an array reply of known length (nil for missing values); any other shape
    /// throws.
    private static func items(_ reply: RedisReply, count: Int) throws(RedisError) -> [[UInt8]?] {
        guard case .array(let elements) = reply, elements.count == count else {
            throw RedisError(kind: .unexpectedReply, message: "expected an array of \(count) values, got \(reply)", command: "the transaction's reads")
        }
        return elements.map { element in
            if case .bulk(let bytes) = element { return bytes }
            return nil
        }
    }
}

/// Where a camera's last applied Kafka message was: its `(partition, offset)`, stored in the
/// camera's position hash (`kafka_partition`, `kafka_offset`) in the same MULTI/EXEC as that
/// message's effects (history entry, PUBLISH, `latest`, alert). The Kafka offset is the
/// message's identity, so a redelivery — a killed member's messages re-read by its successor, a
/// batch written again after its EXEC reply was lost — is recognised by it and applied no
/// second time.
public struct AppliedOffset: Sendable, Equatable {
    /// The topic (empty: not stored, as written before the topic was kept with the pair).
    public var topic: String
    public var partition: Int32
    public var offset: Int64

    public init(topic: String = "", partition: Int32, offset: Int64) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
    }

    /// What to do with a message against the camera's stored pair.
    public enum Verdict: Sendable, Equatable {
        /// New: apply it (and store its pair).
        case apply
        /// At or below what was applied from the same partition: a redelivery; skip its effects.
        case skip
        /// The stored offset is at or past the partition's high watermark, so the topic was
        /// recreated or truncated since (an embedded broker starts at offset 0 every time):
        /// apply it and replace the pair, never skip a stream forever.
        case applyAfterReset
    }

    /// The rule for `message` (its topic, partition, offset and the partition's high watermark
    /// when known) against `stored` (nil: nothing stored, as written before this rule existed).
    /// A message from another partition or topic than the stored one (the topic repartitioned,
    /// the producer's key changed, `--topic` changed) is applied and replaces the pair.
    public static func verdict(for message: MessageOrigin, stored: AppliedOffset?) -> Verdict {
        guard let stored, stored.partition == message.partition, stored.topic.isEmpty || stored.topic == message.topic else { return .apply }
        if let end = message.highWatermark, stored.offset >= end { return .applyAfterReset }
        return message.offset <= stored.offset ? .skip : .apply
    }

    /// The pair as the position hash keeps it; nil when the partition or offset is missing or
    /// not a number.
    static func parse(topic: [UInt8]? = nil, partition: [UInt8]?, offset: [UInt8]?) -> AppliedOffset? {
        guard let partition = partition.flatMap({ Int32(String(decoding: $0, as: UTF8.self)) }),
              let offset = offset.flatMap({ Int64(String(decoding: $0, as: UTF8.self)) }) else { return nil }
        return AppliedOffset(topic: topic.map { String(decoding: $0, as: UTF8.self) } ?? "", partition: partition, offset: offset)
    }
}

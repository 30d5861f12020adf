/// A message's place in Kafka, as the write transaction checks it against `AppliedOffset`.
public struct MessageOrigin: Sendable, Equatable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
    /// The partition's high watermark (nil: unknown): last seen by the consumer, which can be
    /// older than what another member saw, so a reset it suggests is confirmed with the broker
    /// before a message is applied on its strength.
    public var highWatermark: Int64?
    /// The camera's stored offset that `highWatermark` was asked of the broker against (nil:
    /// not asked). Valid only while a read shows that same stored offset: the broker's answer
    /// came after it was written, so the comparison holds; a changed one is asked again.
    public var endConfirmedFor: Int64?

    public init(topic: String = "", partition: Int32, offset: Int64, highWatermark: Int64? = nil) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.highWatermark = highWatermark
    }
}

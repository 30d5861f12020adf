/// A message received on a subscribed channel or pattern.
public struct RedisPubSubMessage: Sendable, Hashable {
    /// The channel the message was published to.
    public var channel: String
    /// The pattern that matched, for `PSUBSCRIBE` deliveries.
    public var pattern: String?
    public var payload: [UInt8]
}

/// What a `RedisSubscriber` reports.
public enum RedisSubscriberEvent: Sendable, Hashable {
    case message(RedisPubSubMessage)
    /// The server confirmed a SUBSCRIBE (or PSUBSCRIBE when `pattern`, or SSUBSCRIBE).
    case subscribed(String, pattern: Bool)
    /// The server confirmed an UNSUBSCRIBE (or PUNSUBSCRIBE).
    case unsubscribed(String, pattern: Bool)
    /// The connection broke; messages published until `reconnected` are lost (pub/sub has no
    /// history). The subscriber keeps retrying with back-off.
    case disconnected(String)
    /// Connected again and every channel and pattern was subscribed anew.
    case reconnected
    /// The server no longer delivers these shard channels to this connection and the subscriber
    /// stopped holding them: it refused their `SSUBSCRIBE` (`MOVED`: another node serves the
    /// slot now) or unsubscribed them itself (their slot moved away). `reason` is its word.
    /// Whoever needs them subscribes them again on the node that serves them now.
    case shardChannelsLost([String], reason: String)
    /// `RedisShardedSubscriber`: shard channels reported lost (their slot moved) are subscribed
    /// again where they are served now; what was published to them meanwhile was not delivered.
    case shardChannelsRestored([String])
}

/// What a bounded event buffer does when its reader falls behind.
public enum RedisOverflowPolicy: Sendable {
    /// Keep the newest events, drop the oldest buffered ones (live dashboards want this).
    case dropOldest
    /// Keep what is buffered, drop new events until there is room.
    case dropNewest
}

public import TrafficModel

/// Everything `traffic-gateway run` can be told, with the product's defaults.
public struct GatewayConfiguration: Sendable {
    /// Address to bind (nil: all interfaces).
    public var host: String? = "127.0.0.1"
    public var port = 8080
    public var redisURL = "redis://127.0.0.1:6379"
    public var keys = KeySchema()
    /// Bytes a client may have queued before it is disconnected as too slow (1008).
    public var maximumQueuedBytes = 1 << 20
    /// Largest inbound message; larger ones close the connection (1009).
    public var maximumInboundBytes = 64 * 1024
    /// Idle connections get a PING after this long and are closed after `idleTimeout`.
    public var pingInterval: Duration = .seconds(20)
    public var idleTimeout: Duration = .seconds(60)
    /// Open WebSocket connections this node accepts; more are refused with 503.
    public var maximumConnections = 20_000
    /// New connections per second (sustained) and burst; more are refused with 429.
    public var connectRate = 1_000.0
    public var connectBurst = 2_000.0
    /// Frames per second one client may send (sustained; bursts of twice that); more are
    /// answered with an `error` `rate_limited` and dropped.
    public var clientMessageRate = 50.0
    public var access = AccessPolicy()
    /// How often a probe message goes through Redis pub/sub (health proves delivery).
    public var probeInterval: Duration = .seconds(1)
    /// How often expired cache entries are dropped and freed memory is returned to the system.
    public var housekeepingInterval: Duration = .seconds(10)
    /// How long SIGTERM waits for clients to close before dropping them.
    public var drainTimeout: Duration = .seconds(5)
    /// On a Redis Cluster: subscribe shard channels on the slot's replicas rather than its
    /// primary (the primaries then spend nothing on the gateway's fan-out).
    public var readFromReplicas = false
    /// On a Redis Cluster, where "every camera" has no pattern subscription: new cameras are
    /// subscribed when the aggregator announces them; this is how often the primaries are scanned
    /// anyway, for an announcement missed (a reconnect): the bound on how late a new camera can
    /// reach "*" clients, its first results read from its history.
    public var cameraDiscoveryInterval: Duration = .seconds(30)
    /// Matches the aggregator's `--latest-ttl`: cached latest results older than this are stale.
    public var latestTTLSeconds = 300
    /// Most history entries one recovery or catch-up reads.
    public var historyReadLimit = 5_000
    /// Bytes of live results held for a client while its snapshot or recovery is in flight
    /// (over it: closed with 1013), and for a camera while its history is read.
    public var maximumBufferedBytes = 8 << 20
    /// How far a snapshot or recovery burst may take a client's send queue past
    /// `maximumQueuedBytes` (a recovery replays up to the whole history at once).
    public var replayAllowanceBytes = 8 << 20
    /// How far past the limit one snapshot (an all-cameras one, say) may take a client's queue:
    /// its own size up to this bound; a larger snapshot closes the client with 1008.
    public var maximumSnapshotBurstBytes = 64 << 20

    public init() {}
}

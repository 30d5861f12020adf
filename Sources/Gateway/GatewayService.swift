import Foundation
public import Logging
public import RedisClient
public import ServiceLifecycle
import Synchronization
import TrafficModel
import Websockets

/// The WebSocket gateway: browsers watch cameras live (SPEC §6, docs/gateway.md).
///
/// This is the owner's handle. Where each piece of state lives (docs/architecture.md):
/// - `GatewayCore`, an actor on the web server's service thread: connections, the
///   subscription hub, the latest cache; lws callbacks and its tasks run there.
/// - The Redis subscriber's thread: its connection and waiter book (`RedisSubscriber`); it
///   hands events to the core through `LiveInbox`, and probe results to `HealthProbe`.
/// - Redis commands: each `RedisClient`'s own serial queue.
///
/// It serves from `init` on; as a swift-service-lifecycle `Service`, `run()` waits for the
/// group's graceful shutdown and then drains.
public final class GatewayService: Service, Sendable {
    public let configuration: GatewayConfiguration
    public let metrics: GatewayMetrics
    let logger: Logger
    let core: GatewayCore
    private let server: WebServer
    private let redis: any RedisRouting
    private let frameRedis: any RedisRouting
    private let channels: any LiveChannels
    private let subscriptions: SubscriptionQueue
    private let inbox: LiveInbox
    private let probe: HealthProbe
    private let probeTask: Task<Void, Never>
    /// On a cluster: the periodic look for cameras that appeared (nil elsewhere).
    private let discoveryTask: Task<Void, Never>?
    /// On a cluster: the aggregator's announcements of new cameras (nil elsewhere).
    private let announcements: RedisSubscriber?
    private let housekeeper: Housekeeper

    /// Starts serving. A `redis-cluster://` URL switches the key schema to hash-tagged names
    /// (a namespace with a brace is refused) and the live stream to shard channels.
    public init(configuration: GatewayConfiguration, logger: Logger = Logger(label: "gateway"), metrics: GatewayMetrics = GatewayMetrics()) throws {
        let redisConfiguration = try RedisConfiguration(url: configuration.redisURL)
        var configuration = configuration
        configuration.keys.hashTagged = redisConfiguration.isCluster
        if redisConfiguration.isCluster, let problem = KeySchema.clusterProblem(namespace: configuration.keys.namespace) {
            throw RedisError(kind: .invalidConfiguration, message: problem)
        }
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        let cluster = redisConfiguration.isCluster
        if cluster {
            redis = try RedisClusterClient(configuration: redisConfiguration, label: "gateway.redis", logger: logger)
            frameRedis = try RedisClusterClient(configuration: redisConfiguration, label: "gateway.frames", logger: logger)
        } else {
            redis = RedisClient(configuration: redisConfiguration, label: "gateway.redis", logger: logger)
            frameRedis = RedisClient(configuration: redisConfiguration, label: "gateway.frames", logger: logger)
        }
        let probeID = UUID().uuidString.prefix(8).lowercased()
        // On a cluster the probe's shard channel is its own hash tag: it lands on some primary.
        let probe = HealthProbe(channel: cluster ? "\(configuration.keys.namespace)gateway:{probe-\(probeID)}" : "\(configuration.keys.namespace)gateway:probe:\(probeID)", interval: configuration.probeInterval)
        self.probe = probe
        let inbox = LiveInbox()
        self.inbox = inbox

        // Parsed on the subscriber threads; only the hand-over reaches the service thread.
        let keys = configuration.keys
        let handle: @Sendable (RedisSubscriberEvent) -> Void = { event in
            switch event {
            case .message(let message):
                if message.channel == probe.channel {
                    if let lag = probe.received(message.payload) { metrics.pubsubLag.record(lag) }
                    return
                }
                guard let camera = keys.camera(fromChannel: message.channel) else { return }
                inbox.push(.result(LiveResult(camera: camera, payload: message.payload), timestamp: LatestCache.timestamp(of: message.payload)))
            case .disconnected(let reason):
                probe.subscriber(up: false)
                metrics.redisUp.set(Int64(0))
                logger.warning("Redis pub/sub lost; clients are told and will catch up from history", metadata: ["reason": "\(reason)"])
                inbox.push(.redisLost)
            case .reconnected:
                probe.subscriber(up: true)
                metrics.redisUp.set(Int64(1))
                metrics.redisReconnects.increment()
                logger.notice("Redis pub/sub back and resubscribed; catching up from history")
                inbox.push(.redisRestored)
            case .subscribed(let name, _) where name == probe.channel:
                // The very first confirmation (Redis reachable at last) tells waiting clients;
                // after a reconnect `.reconnected` does, once every subscription is live again.
                metrics.redisUp.set(Int64(1))
                if probe.probeSubscribed() { inbox.push(.redisRestored) }
            case .shardChannelsLost(let channels, let reason):
                // Placed again by the subscriber; `.shardChannelsRestored` follows.
                logger.info("camera channels interrupted (their slots moved)", metadata: ["channels": "\(channels.count)", "reason": "\(reason)"])
            case .shardChannelsRestored(let channels):
                let cameras = channels.compactMap(keys.camera(fromChannel:))
                if !cameras.isEmpty { inbox.push(.camerasRestored(cameras)) }
            case .subscribed, .unsubscribed:
                break
            }
        }
        if cluster {
            let sharded = try RedisShardedSubscriber(configuration: redisConfiguration, readFromReplicas: configuration.readFromReplicas, logger: logger, handler: handle)
            channels = ClusterChannels(subscriber: sharded, redis: redis, keys: keys) { inbox.push(.camerasAppeared($0)) }
        } else {
            channels = ServerChannels(subscriber: RedisSubscriber(configuration: redisConfiguration, logger: logger, handler: handle), keys: keys)
        }
        let subscriptions = SubscriptionQueue(channels: channels, logger: logger)
        self.subscriptions = subscriptions
        if cluster {
            // Classic pub/sub, which a cluster carries to every node: pinned to one slot's primary,
            // followed across failovers.
            let announced = keys.camerasAnnounced
            let announcements = RedisSubscriber(configuration: redisConfiguration.pinned(toSlotOf: announced), logger: logger) { event in
                guard case .message(let message) = event, let camera = keys.announcedCamera(channel: message.channel, payload: message.payload) else { return }
                subscriptions.appeared([camera])
            }
            self.announcements = announcements
            Task {
                do throws(RedisError) {
                    try await announcements.subscribe([announced]) // held from here on: subscribed again on every reconnect
                } catch {
                    logger.debug("new-camera announcements not subscribed (closed)", metadata: ["error": "\(error)"])
                }
            }
        } else {
            announcements = nil
        }

        var web = WebServerConfiguration(host: configuration.host, port: configuration.port)
        web.maximumInboundMessageBytes = configuration.maximumInboundBytes
        web.maximumQueuedBytes = configuration.maximumQueuedBytes
        web.pingInterval = configuration.pingInterval
        web.idleTimeout = configuration.idleTimeout
        web.name = "gateway"
        do {
            server = try WebServer(configuration: web)
        } catch {
            subscriptions.finish()
            let (channels, announcements) = (self.channels, self.announcements)
            Task {
                await channels.close()
                await announcements?.close()
            }
            throw error
        }
        core = GatewayCore(configuration: configuration, metrics: metrics, logger: logger, server: server,
                           state: RedisState(redis: redis, keys: configuration.keys, historyReadLimit: configuration.historyReadLimit),
                           frames: RedisState(redis: frameRedis, keys: configuration.keys, historyReadLimit: configuration.historyReadLimit),
                           subscriptions: subscriptions, probe: probe, inbox: inbox)
        server.start(delegate: core)
        inbox.attach(core)
        subscriptions.subscribe(probe.channel)
        let (redis, interval) = (redis, configuration.probeInterval)
        probeTask = Task {
            while true {
                let sent = Array(String(format: "%.6f", Date().timeIntervalSince1970).utf8)
                do throws(RedisError) {
                    _ = try await redis.send(cluster ? .spublish(probe.channel, sent) : .publish(probe.channel, sent), routedBy: probe.channel)
                } catch {
                    // The probe that does not come back is what turns /healthz red; this says why.
                    logger.debug("health probe not published", metadata: ["error": "\(error)"])
                }
                do {
                    try await Task.sleep(for: interval)
                } catch {
                    return // cancelled: the gateway stopped
                }
            }
        }
        if cluster {
            let every = configuration.cameraDiscoveryInterval
            discoveryTask = Task {
                while true {
                    do {
                        try await Task.sleep(for: every)
                    } catch {
                        return // cancelled: the gateway stopped
                    }
                    subscriptions.discover()
                }
            }
        } else {
            discoveryTask = nil
        }
        // Expired cache entries leave memory, then the allocator is asked to hand freed pages
        // back to the system (glibc keeps them otherwise, so RSS would stay at the peak a burst
        // of large results left). On its own thread: `malloc_trim` takes milliseconds.
        let core = self.core
        housekeeper = Housekeeper(interval: configuration.housekeepingInterval) {
            let swept = DispatchSemaphore(value: 0)
            core.post { core in
                core.sweepCache()
                swept.signal()
            }
            _ = swept.wait(timeout: .now() + .seconds(5))
            MemoryTrim.releaseFreePages()
        }
    }

    /// Checks the Redis URL once at start: a configuration that can never work (a master name
    /// no sentinel knows, a refused password) throws; a Redis that is only unreachable is
    /// logged and waited for (the gateway serves and tells clients Redis is down meanwhile).
    /// On a cluster every seed unreachable counts as a configuration that cannot work too: the
    /// URL names the nodes, and none of them answered.
    public func checkRedis() async throws(RedisError) {
        do {
            if let cluster = redis as? RedisClusterClient {
                try await cluster.refresh()
                logger.info("Redis Cluster: \(cluster.primaries.count) primaries serve the slots", metadata: ["primaries": "\(cluster.primaries.map(\.description).joined(separator: ","))"])
            } else {
                _ = try await redis.send(.ping(), routedBy: probe.channel)
            }
        } catch where error.isConfigurationProblem || redis is RedisClusterClient {
            throw error
        } catch {
            logger.warning("Redis not reachable at start; will retry", metadata: ["error": "\(error)"])
        }
    }

    /// The port the gateway listens on.
    public var port: Int { configuration.port }

    /// Healthy when the subscriber is connected and a probe went through pub/sub recently.
    public var health: (healthy: Bool, detail: String) { probe.health }

    // MARK: Life cycle

    /// Serves until the service group's graceful shutdown (SIGTERM, SIGINT), then drains. A
    /// group that cancels instead stops the gateway at once.
    public func run() async {
        do {
            try await gracefulShutdown()
        } catch {
            await stop() // cancelled (it throws nothing else): no time to drain
            return
        }
        logger.notice("shutting down: draining (no new connections, clients told to reconnect elsewhere)")
        switch await drain() {
        case .allClosed:
            logger.notice("drained: every client closed")
        case .timedOut(let remaining):
            logger.warning("drain timeout of \(configuration.drainTimeout) passed with \(remaining) clients still connected; they were dropped")
        }
    }

    /// How a drain ended.
    public enum DrainOutcome: Sendable, Equatable {
        /// Every client closed before the drain timeout.
        case allClosed
        /// The drain timeout passed with `remaining` clients connected (dropped by the stop).
        case timedOut(remaining: Int)
    }

    /// Refuses new connections, tells every client to reconnect elsewhere, closes them, waits
    /// until they are gone or `drainTimeout` has passed, then stops.
    @discardableResult
    public func drain() async -> DrainOutcome {
        await core.beginDrain()
        let deadline = ContinuousClock.now + configuration.drainTimeout
        var remaining = await connectionCount()
        while remaining > 0, ContinuousClock.now < deadline {
            do {
                try await Task.sleep(for: .milliseconds(20))
            } catch {
                break // cancelled: stop now
            }
            remaining = await connectionCount()
        }
        await stop()
        return remaining == 0 ? .allClosed : .timedOut(remaining: remaining)
    }

    /// Stops at once: connections dropped, Redis closed.
    public func stop() async {
        probeTask.cancel()
        discoveryTask?.cancel()
        housekeeper.stop()
        server.stop()
        inbox.detach()
        subscriptions.finish()
        await channels.close()
        await announcements?.close()
        await redis.close()
        await frameRedis.close()
    }

    /// Open client connections.
    public func connectionCount() async -> Int {
        await core.clientCount
    }
}

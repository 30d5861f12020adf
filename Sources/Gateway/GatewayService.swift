import Foundation
public import Logging
import RedisClient
import Synchronization
import TrafficModel
public import Websockets

/// The WebSocket gateway: browsers watch cameras live (SPEC §6, docs/gateway.md).
///
/// Threads: the lws service thread owns every connection, the `SubscriptionHub` and the latest
/// cache (all touched only there); the Redis subscriber has its own thread and hands each event
/// over with `WebServer.execute`; Redis reads run as tasks whose results come back the same
/// way. Nothing on the service thread waits on Redis.
public final class GatewayService: WebServerDelegate, @unchecked Sendable {
    public let configuration: GatewayConfiguration
    public let metrics: GatewayMetrics
    let logger: Logger
    let redis: RedisClient
    let state: RedisState
    /// Frame images travel on a connection of their own (megabytes each must not hold up
    /// snapshots and recovery reads), at most `maximumFrameFetches` at a time.
    let frameRedis: RedisClient
    let framesInFlight = Mutex(0)
    static let maximumFrameFetches = 8
    var housekeeper: Housekeeper?
    private(set) var server: WebServer!
    private var subscriber: RedisSubscriber!
    private(set) var subscriptions: SubscriptionQueue!
    var probeTask: Task<Void, Never>?
    let probeChannel: String
    let probe = Mutex(ProbeState())
    private struct ServerSlot {
        var server: WebServer?
        var early: [@Sendable () -> Void] = []
    }
    private let serverSlot = Mutex(ServerSlot())
    /// Live results handed from the subscriber thread to the lws thread, in arrival order.
    let inbox = Mutex<[(LiveResult, Int64?)]>([])

    // Service-thread state.
    var hub: SubscriptionHub
    var clients: [ConnectionID: ClientInfo] = [:]
    var cache: LatestCache
    var connectBucket: TokenBucket
    var draining = false
    var inflightLatest: [Int: [(LiveResult??) -> Void]] = [:]
    var inflightCameraList: [([Int]?) -> Void]?

    struct ClientInfo {
        var permission: CameraPermission
        var listenOnly: Bool
        var peer: String
        /// Inbound frames this client may still send (subscribe storms cost Redis work).
        var messages: TokenBucket
    }

    struct ProbeState {
        var lastReceived: ContinuousClock.Instant?
        var lastLag: Duration?
        var subscriberUp = false
        var everSubscribed = false
    }

    public init(configuration: GatewayConfiguration, logger: Logger = Logger(label: "gateway"), metrics: GatewayMetrics = GatewayMetrics()) throws {
        self.configuration = configuration
        self.logger = logger
        self.metrics = metrics
        let redisConfiguration = try RedisConfiguration(url: configuration.redisURL)
        redis = RedisClient(configuration: redisConfiguration, label: "gateway.redis", logger: logger)
        state = RedisState(redis: redis, keys: configuration.keys, historyReadLimit: configuration.historyReadLimit)
        frameRedis = RedisClient(configuration: redisConfiguration, label: "gateway.frames", logger: logger)
        // Redis counts as down until the subscriber's first confirmation.
        hub = SubscriptionHub(maximumBufferedBytes: configuration.maximumBufferedBytes, redisUp: false)
        cache = LatestCache(liveTTL: .seconds(configuration.latestTTLSeconds))
        connectBucket = TokenBucket(rate: configuration.connectRate, burst: configuration.connectBurst)
        probeChannel = "\(configuration.keys.namespace)gateway:probe:\(UUID().uuidString.prefix(8).lowercased())"

        // Everything the delegate methods use exists before the port opens; the subscriber's
        // events reach the lws thread through `post`, which holds them until it exists.
        subscriber = RedisSubscriber(configuration: redisConfiguration, logger: logger) { [weak self] event in
            guard let self else { return }
            // Parse off the service thread; only the hand-over happens there.
            switch event {
            case .message(let message):
                if message.channel == self.probeChannel {
                    self.probeReceived(message.payload)
                    return
                }
                guard let camera = self.configuration.keys.camera(fromChannel: message.channel) else { return }
                let result = LiveResult(camera: camera, payload: message.payload)
                let timestamp = LatestCache.timestamp(of: message.payload)
                // A burst (one aggregator batch) is handed over as one wake-up of the lws thread.
                let first = self.inbox.withLock { inbox -> Bool in
                    inbox.append((result, timestamp))
                    return inbox.count == 1
                }
                if first { self.post { self.drainInbox() } }
            case .disconnected(let reason):
                self.probe.withLock { $0.subscriberUp = false }
                self.metrics.redisUp.set(Int64(0))
                self.logger.warning("Redis pub/sub lost; clients are told and will catch up from history", metadata: ["reason": "\(reason)"])
                self.post { self.perform(self.hub.redisLost()) }
            case .reconnected:
                self.probe.withLock { $0.subscriberUp = true }
                self.metrics.redisUp.set(Int64(1))
                self.metrics.redisReconnects.increment()
                self.logger.notice("Redis pub/sub back and resubscribed; catching up from history")
                self.post { self.perform(self.hub.redisRestored()) }
            case .subscribed(let name, _) where name == self.probeChannel:
                // The very first confirmation (Redis reachable at last) tells waiting clients;
                // after a reconnect `.reconnected` does, once every subscription is live again.
                let first = self.probe.withLock { state -> Bool in
                    defer { state.everSubscribed = true }
                    state.subscriberUp = true
                    return !state.everSubscribed
                }
                self.metrics.redisUp.set(Int64(1))
                if first { self.post { self.perform(self.hub.redisRestored()) } }
            case .subscribed, .unsubscribed:
                break
            }
        }
        subscriptions = SubscriptionQueue(subscriber: subscriber, logger: logger)

        var web = WebServerConfiguration(host: configuration.host, port: configuration.port)
        web.maximumInboundMessageBytes = configuration.maximumInboundBytes
        web.maximumQueuedBytes = configuration.maximumQueuedBytes
        web.pingInterval = configuration.pingInterval
        web.idleTimeout = configuration.idleTimeout
        web.name = "gateway"
        do {
            let server = try WebServer(configuration: web, delegate: self, start: false)
            self.server = server
            server.start()
            serverSlot.withLock { slot in
                slot.server = server
                for work in slot.early { server.execute(work) }
                slot.early = []
            }
        } catch {
            subscriptions.finish()
            let subscriber = self.subscriber!
            Task { await subscriber.close() }
            throw error
        }
        subscriptions.subscribe(probeChannel)
        probeTask = Task { [weak self] in await self?.runProbe() }
        housekeeper = Housekeeper(interval: configuration.housekeepingInterval) { [weak self] in self?.housekeeping() }
    }

    /// Hands `work` to the lws service thread (held until the server exists).
    func post(_ work: @escaping @Sendable () -> Void) {
        let server = serverSlot.withLock { slot -> WebServer? in
            if slot.server == nil { slot.early.append(work) }
            return slot.server
        }
        server?.execute(work)
    }

    /// The port the gateway listens on.
    public var port: Int { configuration.port }

    // MARK: Life cycle

    /// SIGTERM: refuse new connections, tell every client to reconnect elsewhere, close them,
    /// wait up to `drainTimeout`, then stop.
    public func drain() async {
        server.execute { [self] in
            draining = true
            for id in clients.keys.sorted() {
                send(.shutdown, to: id)
                server.close(id, code: 1001, reason: "server shutting down; reconnect with your positions", flush: true)
            }
        }
        let deadline = ContinuousClock.now + configuration.drainTimeout
        while ContinuousClock.now < deadline {
            if await connectionCount() == 0 { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        await stop()
    }

    /// Stops at once: connections dropped, Redis closed.
    public func stop() async {
        probeTask?.cancel()
        housekeeper?.stop()
        server.stop()
        subscriptions.finish()
        await subscriber.close()
        await redis.close()
        await frameRedis.close()
    }

    /// Open client connections (asks the service thread).
    public func connectionCount() async -> Int {
        await onServiceThread(stopped: 0) { $0.clients.count }
    }

    /// Runs `body` on the service thread and returns its value (`stopped` once it has stopped).
    func onServiceThread<T: Sendable>(stopped: T, _ body: @escaping @Sendable (GatewayService) -> T) async -> T {
        await withCheckedContinuation { continuation in
            let accepted = server.execute { [self] in continuation.resume(returning: body(self)) }
            if !accepted { continuation.resume(returning: stopped) }
        }
    }

    // MARK: WebSocket connections (service thread)

    public func shouldAccept(_ request: HTTPRequest) -> UpgradeDecision {
        guard let target = Endpoint(path: request.path) else {
            metrics.refused["path"]?.increment()
            return .reject(status: 404, reason: "WebSocket endpoints are /ws and /ws/cameras/<id>")
        }
        if draining {
            metrics.refused["draining"]?.increment()
            return .reject(status: 503, reason: "shutting down; connect to another node")
        }
        if clients.count >= configuration.maximumConnections {
            metrics.refused["limit"]?.increment()
            return .reject(status: 503, reason: "connection limit of \(configuration.maximumConnections) reached")
        }
        switch configuration.access.authorize(request) {
        case .failure(let denied):
            metrics.refused[denied.status == 403 ? "origin" : "auth"]?.increment()
            return .reject(status: denied.status, reason: denied.reason)
        case .success(let permission):
            if case .camera(let camera) = target, !permission.allows(camera) {
                metrics.refused["auth"]?.increment()
                return .reject(status: 403, reason: "not allowed to watch camera \(camera)")
            }
        }
        guard connectBucket.take() else {
            metrics.refused["rate"]?.increment()
            return .reject(status: 429, reason: "too many new connections; retry shortly")
        }
        return .accept
    }

    public func opened(_ connection: WebSocketID, request: HTTPRequest) {
        let permission = (try? configuration.access.authorize(request).get()) ?? .only([])
        let target = Endpoint(path: request.path)
        clients[connection] = ClientInfo(permission: permission, listenOnly: target != .all, peer: request.peer,
                                         messages: TokenBucket(rate: configuration.clientMessageRate, burst: configuration.clientMessageRate * 2))
        hub.connect(connection, permission: permission)
        metrics.connections.set(Double(clients.count))
        send(.status(redis: hub.redisUp), to: connection)
        if case .camera(let camera) = target {
            var since: [Int: ResultPosition] = [:]
            if let offset = request.query["offset"].flatMap({ Int64($0) }), let epoch = request.query["epoch"], !epoch.isEmpty {
                since[camera] = ResultPosition(offset: offset, epoch: epoch)
            }
            perform(hub.subscribe(connection, .cameras([camera]), since: since))
        }
    }

    public func received(_ connection: WebSocketID, message: [UInt8], isBinary: Bool) {
        guard let info = clients[connection] else { return }
        guard clients[connection]!.messages.take() else {
            clientError(connection, ClientRequestError(reason: "rate_limited", detail: "more than \(Int(configuration.clientMessageRate)) frames per second; this one was dropped"))
            return
        }
        if isBinary {
            clientError(connection, ClientRequestError(reason: "binary_not_supported", detail: "send JSON text frames"))
            return
        }
        switch ClientRequest.parse(message) {
        case .failure(let error):
            clientError(connection, error)
        case .success(.ping):
            send(.pong, to: connection)
        case .success(let request) where info.listenOnly:
            clientError(connection, ClientRequestError(reason: "listen_only", detail: "this path streams one camera; use /ws to \(request.verb)"))
        case .success(.subscribe(let selection, let since)):
            perform(hub.subscribe(connection, selection, since: since))
        case .success(.unsubscribe(let selection)):
            perform(hub.unsubscribe(connection, selection))
        }
        metrics.subscriptions.set(Double(hub.subscriptionCount))
    }

    public func closed(_ connection: WebSocketID) {
        clients[connection] = nil
        perform(hub.disconnect(connection))
        metrics.connections.set(Double(clients.count))
        metrics.subscriptions.set(Double(hub.subscriptionCount))
    }

    func clientError(_ connection: ConnectionID, _ error: ClientRequestError) {
        metrics.clientErrors.increment()
        send(.error(reason: error.reason, detail: error.detail), to: connection)
    }

}

extension ClientRequest {
    var verb: String {
        switch self {
        case .subscribe: "subscribe"
        case .unsubscribe: "unsubscribe"
        case .ping: "ping"
        }
    }
}

/// The WebSocket endpoints.
enum Endpoint: Equatable {
    /// `/ws`: the full protocol.
    case all
    /// `/ws/cameras/<id>`: listen-only stream of one camera.
    case camera(Int)

    init?(path: String) {
        if path == "/ws" || path == "/ws/" {
            self = .all
        } else if path.hasPrefix("/ws/cameras/"), let camera = CameraID.parse(path.dropFirst("/ws/cameras/".count)) {
            self = .camera(camera)
        } else {
            return nil
        }
    }
}

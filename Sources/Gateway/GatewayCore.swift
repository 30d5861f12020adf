import Foundation
import Logging
import RedisClient
import TrafficModel
import Websockets

/// The gateway's state and its WebSocket and HTTP handling: an actor whose executor is the web
/// server's service thread. The lws callbacks (through `WebServerDelegate`) and the actor's own
/// tasks run on that one thread, so the hub, the latest cache, the client table and the
/// single-flight bookkeeping are confined there by the compiler, and Redis reads are plain
/// `await`s that come back to it. Nothing on this thread waits on Redis.
actor GatewayCore: WebServerDelegate {
    let executor: any SerialExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    let configuration: GatewayConfiguration
    let metrics: GatewayMetrics
    let logger: Logger
    let server: WebServer
    let state: RedisState
    /// Frame images travel on a connection of their own (megabytes each must not hold up
    /// snapshots and recovery reads), at most `maximumFrameFetches` at a time.
    let frames: RedisState
    static let maximumFrameFetches = 8
    let subscriptions: SubscriptionQueue
    let probe: HealthProbe
    let inbox: LiveInbox

    var hub: SubscriptionHub
    var clients: [ConnectionID: ClientInfo] = [:]
    var cache: LatestCache
    var connectBucket: TokenBucket
    var draining = false
    var framesInFlight = 0
    /// Latest reads in flight, per camera (one read however many ask).
    var inflightLatest: [Int: Task<[Int: LiveResult]?, Never>] = [:]
    /// The camera list read in flight.
    var inflightCameraList: Task<[Int]?, Never>?
    /// Results held for batching clients until the server writes (`flushing()`), in order.
    var pendingBatches: [ConnectionID: PendingBatch] = [:]
    /// Clients with a pending batch, in the order they got one.
    var pendingOrder: [ConnectionID] = []

    /// A batching client's results of the current callback or drain.
    struct PendingBatch {
        var results: [(result: LiveResult, frame: OutboundFrame?)] = []
        var allowance = 0
    }

    struct ClientInfo {
        var permission: CameraPermission
        var listenOnly: Bool
        var peer: String
        /// Inbound frames this client may still send (subscribe storms cost Redis work).
        var messages: TokenBucket
        /// Asked for batched results (on connect or in a subscribe): several queued results go
        /// out as one `results` frame.
        var batching = false
    }

    init(configuration: GatewayConfiguration, metrics: GatewayMetrics, logger: Logger, server: WebServer, state: RedisState, frames: RedisState,
         subscriptions: SubscriptionQueue, probe: HealthProbe, inbox: LiveInbox) {
        executor = server.executor
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.server = server
        self.state = state
        self.frames = frames
        self.subscriptions = subscriptions
        self.probe = probe
        self.inbox = inbox
        // Redis counts as down until the subscriber's first confirmation.
        hub = SubscriptionHub(maximumBufferedBytes: configuration.maximumBufferedBytes, redisUp: false)
        cache = LatestCache(liveTTL: .seconds(configuration.latestTTLSeconds))
        connectBucket = TokenBucket(rate: configuration.connectRate, burst: configuration.connectBurst)
    }

    /// Runs `body` on the service thread, isolated to the core, from any thread without a task
    /// (the subscriber's and housekeeping threads). Dropped once the server is stopping.
    nonisolated func post(_ body: @escaping @Sendable (isolated GatewayCore) -> Void) {
        server.execute { self.assumeIsolated(body) }
    }

    // MARK: Life cycle

    /// SIGTERM: refuse new connections, tell every client to reconnect elsewhere, close them.
    func beginDrain() {
        draining = true
        for id in clients.keys.sorted() {
            send(.shutdown, to: id)
            server.close(id, code: 1001, reason: "server shutting down; reconnect with your positions", flush: true)
        }
    }

    /// Open client connections.
    var clientCount: Int { clients.count }

    /// Cameras the hub follows on pub/sub (for tests and diagnostics).
    var subscribedCameras: Set<Int> { hub.subscribedCameras }

    // MARK: WebSocket connections

    func shouldAccept(_ request: HTTPRequest) -> UpgradeDecision {
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

    func opened(_ connection: WebSocketID, request: HTTPRequest) {
        // Authorized a moment ago by `shouldAccept`; a token that expired since watches nothing.
        let permission: CameraPermission = switch configuration.access.authorize(request) {
        case .success(let permission): permission
        case .failure: .only([])
        }
        let target = Endpoint(path: request.path)
        clients[connection] = ClientInfo(permission: permission, listenOnly: target != .all, peer: request.peer,
                                         messages: TokenBucket(rate: configuration.clientMessageRate, burst: configuration.clientMessageRate * 2),
                                         batching: ["1", "true"].contains(request.query["batch"] ?? ""))
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

    func received(_ connection: WebSocketID, message: [UInt8], isBinary: Bool) {
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
        case .success(.subscribe(let selection, let since, let batch)):
            if batch { clients[connection]?.batching = true }
            perform(hub.subscribe(connection, selection, since: since))
        case .success(.unsubscribe(let selection)):
            perform(hub.unsubscribe(connection, selection))
        }
        metrics.subscriptions.set(Double(hub.subscriptionCount))
    }

    func closed(_ connection: WebSocketID) {
        clients[connection] = nil
        pendingBatches[connection] = nil
        perform(hub.disconnect(connection))
        metrics.connections.set(Double(clients.count))
        metrics.subscriptions.set(Double(hub.subscriptionCount))
    }

    func clientError(_ connection: ConnectionID, _ error: ClientRequestError) {
        metrics.clientErrors.increment()
        send(.error(reason: error.reason, detail: error.detail), to: connection)
    }

    // MARK: The live stream

    /// Takes what the subscriber thread queued, in order.
    func drainInbox() {
        for event in inbox.take() {
            switch event {
            case .result(let result, let timestamp):
                metrics.resultsReceived.increment()
                if hub.receives(result.camera) { cache.offer(result, timestamp: timestamp) }
                perform(hub.receive(result))
            case .redisLost:
                perform(hub.redisLost())
            case .redisRestored:
                perform(hub.redisRestored())
            case .camerasAppeared(let cameras):
                perform(hub.camerasAppeared(cameras))
            case .camerasRestored(let cameras):
                perform(hub.camerasRestored(cameras))
            }
        }
    }

    /// Expired cache entries leave memory (housekeeping).
    func sweepCache() {
        cache.sweepExpired()
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

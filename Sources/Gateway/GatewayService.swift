import Foundation
import Logging
import RedisClient
import Synchronization
import TrafficModel
import Websockets

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
    private(set) var server: WebServer!
    private var subscriber: RedisSubscriber!
    private var subscriptions: SubscriptionQueue!
    var subscriptionQueue: SubscriptionQueue { subscriptions }
    private var probeTask: Task<Void, Never>?
    let probeChannel: String
    let probe = Mutex(ProbeState())
    private struct ServerSlot {
        var server: WebServer?
        var early: [@Sendable () -> Void] = []
    }
    private let serverSlot = Mutex(ServerSlot())
    /// Live results handed from the subscriber thread to the lws thread, in arrival order.
    private let inbox = Mutex<[(LiveResult, Int64?)]>([])

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
    }

    /// Hands `work` to the lws service thread (held until the server exists).
    private func post(_ work: @escaping @Sendable () -> Void) {
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
        server.stop()
        subscriptions.finish()
        await subscriber.close()
        await redis.close()
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

    // MARK: Health probe

    private func runProbe() async {
        while !Task.isCancelled {
            let sent = Date().timeIntervalSince1970
            _ = try? await redis.send(.publish(probeChannel, Array(String(format: "%.6f", sent).utf8)))
            try? await Task.sleep(for: configuration.probeInterval)
        }
    }

    private func probeReceived(_ payload: [UInt8]) {
        let now = ContinuousClock.now
        let lag = Double(String(decoding: payload, as: UTF8.self)).map { Date().timeIntervalSince1970 - $0 }
        probe.withLock { state in
            state.lastReceived = now
            state.subscriberUp = true
            if let lag { state.lastLag = .microseconds(Int64(max(lag, 0) * 1e6)) }
        }
        if let lag { metrics.pubsubLag.record(.microseconds(Int64(max(lag, 0) * 1e6))) }
    }

    /// Healthy when the subscriber is connected and a probe went through pub/sub recently.
    public var health: (healthy: Bool, detail: String) {
        let state = probe.withLock { $0 }
        let window = max(configuration.probeInterval * 3, .seconds(3))
        let age = state.lastReceived.map { ContinuousClock.now - $0 }
        let pubsub = age.map { $0 <= window } ?? false
        let healthy = pubsub && state.subscriberUp
        let ageMs = age.map { String(Int($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000)) } ?? "null"
        let lagMs = state.lastLag.map { String(format: "%.3f", Double($0.components.attoseconds) / 1e15 + Double($0.components.seconds) * 1000) } ?? "null"
        return (healthy, #"{"ready":\#(healthy),"redis":\#(state.subscriberUp),"pubsub":\#(pubsub),"lastProbeAgeMs":\#(ageMs),"pubsubLagMs":\#(lagMs)}"#)
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

    private func clientError(_ connection: ConnectionID, _ error: ClientRequestError) {
        metrics.clientErrors.increment()
        send(.error(reason: error.reason, detail: error.detail), to: connection)
    }

    // MARK: Live stream (service thread)

    private func drainInbox() {
        let batch = inbox.withLock { inbox -> [(LiveResult, Int64?)] in
            defer { inbox.removeAll(keepingCapacity: true) }
            return inbox
        }
        for (result, timestamp) in batch { liveResult(result, timestamp: timestamp) }
    }

    func liveResult(_ result: LiveResult, timestamp: Int64?) {
        metrics.resultsReceived.increment()
        if hub.receives(result.camera) { cache.offer(result, timestamp: timestamp) }
        perform(hub.receive(result))
    }

    func send(_ message: ServerMessage, to connection: ConnectionID, allowance: Int = 0) {
        if case .snapshot(let entries) = message, entries.count > 1 {
            // Big snapshots go out in several frames of bounded size.
            var chunk: [SnapshotEntry] = []
            var bytes = 0
            for entry in entries {
                let size = (entry.latest?.payload.count ?? 0) + 96
                if !chunk.isEmpty, bytes + size > Self.snapshotFrameBytes {
                    enqueue(OutboundFrame(ServerMessage.snapshot(chunk).encoded()), to: connection, allowance: allowance)
                    chunk = []
                    bytes = 0
                }
                chunk.append(entry)
                bytes += size
            }
            enqueue(OutboundFrame(ServerMessage.snapshot(chunk).encoded()), to: connection, allowance: allowance)
            return
        }
        enqueue(OutboundFrame(message.encoded()), to: connection, allowance: allowance)
    }

    /// Snapshot frames stay under this size.
    static let snapshotFrameBytes = 256 * 1024

    private func enqueue(_ frame: OutboundFrame, to connection: ConnectionID, allowance: Int = 0) {
        switch server.send(frame, to: connection, allowance: allowance) {
        case .queued:
            metrics.messagesOut.increment()
            metrics.bytesOut.increment(by: Int64(frame.count))
        case .overLimit:
            metrics.slowClientDisconnects.increment()
            logger.notice("client too slow: send queue over limit, disconnected", metadata: ["connection": "\(connection)", "peer": "\(clients[connection]?.peer ?? "")"])
        case .unknownConnection:
            break
        }
    }

    /// Carries out the hub's actions, in order.
    func perform(_ actions: [HubAction]) {
        for action in actions {
            switch action {
            case .deliver(let result, let ids):
                let frame = OutboundFrame(ResultFrame.encoded(result))
                for id in ids { enqueue(frame, to: id) }
            case .replay(let result, let id):
                enqueue(OutboundFrame(ResultFrame.encoded(result)), to: id, allowance: configuration.replayAllowanceBytes)
            case .send(let id, let message):
                switch message {
                case .recovered: metrics.recoveriesOK.increment()
                case .recoveryFailed: metrics.recoveriesFailed.increment()
                case .gap: metrics.gaps.increment()
                default: break
                }
                send(message, to: id, allowance: configuration.replayAllowanceBytes)
            case .close(let id, let code, let reason):
                server.close(id, code: code, reason: reason)
            case .subscribe(let camera):
                subscriptions.subscribe(configuration.keys.cameraChannel(camera))
            case .unsubscribe(let camera):
                subscriptions.unsubscribe(configuration.keys.cameraChannel(camera))
                if !hub.receives(camera) { cache.stopFollowing(camera) }
            case .subscribeAll:
                subscriptions.psubscribe(configuration.keys.allCamerasPattern)
            case .unsubscribeAll:
                subscriptions.punsubscribe(configuration.keys.allCamerasPattern)
                cache.stopFollowing { !hub.receives($0) }
            case .fetchSnapshot(let id, let cameras, let all, let generation):
                fetchSnapshot(id, cameras: cameras, all: all, generation: generation)
            case .fetchRecovery(let id, let camera, let since, let generation):
                readHistory(camera: camera, after: since) { [self] read in perform(hub.recoveryReady(id, camera: camera, since: since, generation: generation, read: read)) }
            case .fetchCatchUp(let camera, let after, let generation):
                readHistory(camera: camera, after: after) { [self] read in
                    // What pub/sub missed also keeps the latest cache current.
                    if hub.receives(camera) {
                        for entry in read.entries { cache.offer(entry, timestamp: LatestCache.timestamp(of: entry.payload)) }
                    }
                    perform(hub.catchUpReady(camera: camera, generation: generation, read: read))
                }
            }
        }
    }

    /// Reads history after the subscription changes queued so far are active; retries while
    /// Redis is unreachable. `done` runs on the service thread.
    private func readHistory(camera: Int, after: ResultPosition, done: @escaping @Sendable (HistoryRead) -> Void) {
        Task { [self] in
            await subscriptions.barrier()
            var delay = Duration.milliseconds(50)
            while true {
                do {
                    let read = try await state.history(camera: camera, after: after)
                    server.execute { done(read) }
                    return
                } catch let error as RedisError {
                    if case .closed = error.kind { return }
                    logger.debug("history read failed; retrying", metadata: ["camera": "\(camera)", "error": "\(error)"])
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(2))
                } catch {
                    return
                }
            }
        }
    }

    /// A snapshot for a subscribe: cached latest results of cameras the live stream keeps
    /// current, the rest read from Redis after the subscription barrier (never an older read),
    /// retried until Redis answers. `snapshotReady` runs on the service thread.
    private func fetchSnapshot(_ id: ConnectionID, cameras: [Int], all: Bool, generation: UInt64) {
        var known: [Int: LiveResult?] = [:]
        if !all {
            for camera in cameras { if let hit = cache.lookup(camera, followingOnly: true) { known[camera] = hit } }
            if known.count == cameras.count {
                perform(hub.snapshotReady(id, entries: cameras.map { SnapshotEntry(camera: $0, latest: known[$0] ?? nil) }, all: false, generation: generation))
                return
            }
        }
        let missing = cameras.filter { known[$0] == nil }
        let cached = known
        let state = self.state
        let subscriptions = self.subscriptionQueue
        Task { [self] in
            await subscriptions.barrier()
            var delay = Duration.milliseconds(50)
            while true {
                do throws(RedisError) {
                    let list = all ? try await state.camerasWithLatest() : missing
                    let found = try await state.snapshot(list)
                    server.execute { [self] in
                        for camera in list { cache.store(camera, found[camera]?.latest, following: hub.receives(camera)) }
                        let names = all ? list : cameras
                        let entries = names.map { camera in
                            SnapshotEntry(camera: camera, latest: cached[camera] ?? found[camera]?.latest, current: found[camera]?.current)
                        }
                        perform(hub.snapshotReady(id, entries: entries, all: all, generation: generation))
                    }
                    return
                } catch {
                    if case .closed = error.kind { return }
                    logger.debug("snapshot read failed; retrying", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: delay)
                    delay = min(delay * 2, .seconds(2))
                }
            }
        }
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

import ArgumentParser
import Foundation
import Gateway
import Logging
import RedisClient
import ServiceCLI
import TrafficModel

/// `traffic-gateway`: live camera results to browsers over WebSocket, plus HTTP API and dashboard.
@main
struct TrafficGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "traffic-gateway",
        abstract: "WebSocket gateway: Redis camera channels → browsers, with snapshot, recovery, HTTP API and dashboard.",
        subcommands: [RunGateway.self, TokenCommand.self]
    )
}

/// `traffic-gateway run`.
struct RunGateway: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the gateway (HTTP + WebSocket on one port).")

    @Option(help: "Port for HTTP and WebSocket (env GATEWAY_PORT).") var port: Int?
    @Option(help: "Address to bind; 0.0.0.0 for all interfaces (env GATEWAY_HOST).") var host: String?
    @OptionGroup var redis: RedisOptions
    @Option(name: .customLong("max-queue-bytes"), help: "Bytes queued per client before it is disconnected as too slow (env GATEWAY_MAX_QUEUE_BYTES).") var maxQueueBytes: Int?
    @Option(name: .customLong("max-frame-bytes"), help: "Largest inbound client message (env GATEWAY_MAX_FRAME_BYTES).") var maxFrameBytes: Int?
    @Option(name: .customLong("max-connections"), help: "WebSocket connections this node accepts (env GATEWAY_MAX_CONNECTIONS).") var maxConnections: Int?
    @Option(name: .customLong("connect-rate"), help: "New connections per second, sustained (env GATEWAY_CONNECT_RATE); bursts of twice that.") var connectRate: Double?
    @Option(name: .customLong("ping-interval"), help: "Seconds of silence before the server pings a client (env GATEWAY_PING_INTERVAL).") var pingInterval: Int?
    @Option(name: .customLong("idle-timeout"), help: "Seconds without valid traffic before a client is dropped (env GATEWAY_IDLE_TIMEOUT).") var idleTimeout: Int?
    @Option(name: .customLong("auth-token"), help: "Require this static bearer token (env GATEWAY_AUTH_TOKEN).") var authToken: String?
    @Option(name: .customLong("jwt-secret"), help: "Require an HS256 JWT signed with this secret; claim 'cameras' limits what a client may watch (env GATEWAY_JWT_SECRET).") var jwtSecret: String?
    @Flag(name: .customLong("allow-tokens-without-exp"), help: "Accept JWTs that have no 'exp' claim (default: refused with 401).") var allowTokensWithoutExp = false
    @Option(name: .customLong("allowed-origin"), help: "Allowed Origin, repeatable (env GATEWAY_ALLOWED_ORIGINS, comma-separated); default any.") var allowedOrigins: [String] = []
    @Option(name: .customLong("latest-ttl"), help: "The aggregator's latest TTL in seconds (env LATEST_TTL).") var latestTTL: Int?
    @Option(name: .customLong("housekeeping-seconds"), help: "How often expired cached results are dropped and freed memory is returned to the system (env GATEWAY_HOUSEKEEPING_SECONDS).") var housekeepingSeconds: Int?
    @Option(name: .customLong("drain-seconds"), help: "On SIGTERM, how long clients get to close (env GATEWAY_DRAIN_SECONDS).") var drainSeconds: Int?
    @Flag(name: .customLong("read-from-replicas"), help: "Redis Cluster: subscribe camera channels on each slot's replicas, not its primary (env GATEWAY_READ_FROM_REPLICAS=1).") var readFromReplicas = false
    @Option(name: .customLong("camera-discovery-seconds"), help: "Redis Cluster: how often the primaries are scanned for new cameras the aggregator's announcements missed, for \"*\" clients (env GATEWAY_CAMERA_DISCOVERY_SECONDS; default 30).") var cameraDiscoverySeconds: Double?
    @Option(name: .customLong("log-level"), help: "trace|debug|info|notice|warning|error|critical (env LOG_LEVEL).") var logLevel: String?

    func validate() throws {
        if let seconds = cameraDiscoverySeconds, !(seconds > 0) { throw ValidationError("--camera-discovery-seconds must be positive, got \(seconds)") }
        if setting(authToken, env: "GATEWAY_AUTH_TOKEN") != nil, setting(jwtSecret, env: "GATEWAY_JWT_SECRET") != nil {
            throw ValidationError("--auth-token and --jwt-secret are exclusive: choose one way to authenticate")
        }
        for (name, value) in [("--port", port), ("--max-queue-bytes", maxQueueBytes), ("--max-frame-bytes", maxFrameBytes), ("--max-connections", maxConnections), ("--ping-interval", pingInterval), ("--idle-timeout", idleTimeout), ("--housekeeping-seconds", housekeepingSeconds)] {
            if let value, value <= 0 { throw ValidationError("\(name) must be positive, got \(value)") }
        }
    }

    func run() async throws {
        bootstrapLogging(logLevel)
        let logger = Logger(label: "traffic-gateway")
        var config = GatewayConfiguration()
        config.port = try setting(port, env: "GATEWAY_PORT") ?? config.port
        config.host = setting(host, env: "GATEWAY_HOST") ?? config.host
        if config.host == "0.0.0.0" || config.host == "*" { config.host = nil }
        config.redisURL = redis.resolvedURL
        config.keys = KeySchema(namespace: redis.resolvedNamespace)
        config.readFromReplicas = readFromReplicas || ["1", "true", "yes"].contains(env("GATEWAY_READ_FROM_REPLICAS")?.lowercased() ?? "")
        if let seconds = try setting(cameraDiscoverySeconds, env: "GATEWAY_CAMERA_DISCOVERY_SECONDS") {
            guard seconds > 0 else { throw ValidationError("GATEWAY_CAMERA_DISCOVERY_SECONDS must be positive, got \(seconds)") }
            config.cameraDiscoveryInterval = .milliseconds(Int64(seconds * 1000))
        }
        config.maximumQueuedBytes = try setting(maxQueueBytes, env: "GATEWAY_MAX_QUEUE_BYTES") ?? config.maximumQueuedBytes
        config.maximumInboundBytes = try setting(maxFrameBytes, env: "GATEWAY_MAX_FRAME_BYTES") ?? config.maximumInboundBytes
        config.maximumConnections = try setting(maxConnections, env: "GATEWAY_MAX_CONNECTIONS") ?? config.maximumConnections
        if let rate = try setting(connectRate, env: "GATEWAY_CONNECT_RATE") {
            config.connectRate = rate
            config.connectBurst = rate * 2
        }
        if let seconds = try setting(pingInterval, env: "GATEWAY_PING_INTERVAL") { config.pingInterval = .seconds(seconds) }
        if let seconds = try setting(idleTimeout, env: "GATEWAY_IDLE_TIMEOUT") { config.idleTimeout = .seconds(seconds) }
        if let seconds = try setting(drainSeconds, env: "GATEWAY_DRAIN_SECONDS") { config.drainTimeout = .seconds(seconds) }
        if let seconds = try setting(housekeepingSeconds, env: "GATEWAY_HOUSEKEEPING_SECONDS") { config.housekeepingInterval = .seconds(seconds) }
        config.latestTTLSeconds = try setting(latestTTL, env: "LATEST_TTL") ?? config.latestTTLSeconds
        let origins = allowedOrigins + (env("GATEWAY_ALLOWED_ORIGINS")?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? [])
        var mode = AccessPolicy.Mode.open
        if let token = setting(authToken, env: "GATEWAY_AUTH_TOKEN") { mode = .staticToken(token) }
        if let secret = setting(jwtSecret, env: "GATEWAY_JWT_SECRET") { mode = .jwtHS256(secret: Array(secret.utf8)) }
        config.access = AccessPolicy(mode: mode, allowedOrigins: Set(origins), allowTokensWithoutExpiry: allowTokensWithoutExp)

        let auth = switch mode {
        case .open: "off"
        case .staticToken: "static token"
        case .jwtHS256: "HS256 JWT"
        }
        logger.info("""
            starting: listen=\(config.host ?? "0.0.0.0"):\(config.port) redis=\(RedisConfiguration.masked(config.redisURL)) \
            namespace='\(config.keys.namespace)' maxQueue=\(config.maximumQueuedBytes)B maxFrame=\(config.maximumInboundBytes)B \
            maxConnections=\(config.maximumConnections) connectRate=\(config.connectRate)/s ping=\(config.pingInterval) \
            idle=\(config.idleTimeout) auth=\(auth) origins=\(origins.isEmpty ? "any" : origins.joined(separator: ","))
            """)
        let gateway = try GatewayService(configuration: config, logger: logger)
        do {
            try await gateway.checkRedis()
        } catch {
            logger.critical("Redis cannot be used: \(error)")
            await gateway.stop()
            throw ExitCode(2)
        }
        logger.notice("dashboard on http://\(config.host ?? "0.0.0.0"):\(config.port)/ , WebSocket /ws, API /api/cameras, /healthz, /metrics")
        try await runServiceGroup([gateway], logger: logger)
        logger.notice("stopped")
    }
}

/// `traffic-gateway token`: signs an HS256 JWT for a client (operators and tests).
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "token", abstract: "Print an HS256 JWT for the gateway's --jwt-secret.")

    @Option(name: .customLong("jwt-secret"), help: "The gateway's secret (env GATEWAY_JWT_SECRET).") var jwtSecret: String?
    @Option(help: "Cameras the token may watch, comma-separated, or '*' (default).") var cameras = "*"
    @Option(name: .customLong("ttl"), help: "Seconds until the token expires.") var ttl = 3600
    @Option(help: "Subject (who the token is for).") var subject = "operator"

    func run() throws {
        guard let secret = setting(jwtSecret, env: "GATEWAY_JWT_SECRET") else { throw ValidationError("--jwt-secret (or GATEWAY_JWT_SECRET) is required") }
        let claim: String
        if cameras == "*" {
            claim = #""*""#
        } else {
            let ids = try cameras.split(separator: ",").map { text -> Int in
                guard let id = CameraID.parse(text.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("'\(text)' is not a camera id") }
                return id
            }
            claim = "[" + ids.map(String.init).joined(separator: ",") + "]"
        }
        guard ttl > 0 else { throw ValidationError("--ttl must be positive, got \(ttl)") }
        let exp = Int(Date().timeIntervalSince1970) + ttl
        let token = try JWT.sign(claims: #"{"sub":\#(JSONText.quoted(subject)),"exp":\#(exp),"cameras":\#(claim)}"#, secret: Array(secret.utf8))
        guard token.utf8.count <= JWT.maximumIssuedBytes else {
            throw ValidationError("a token for these cameras would be \(token.utf8.count) bytes, over the \(JWT.maximumIssuedBytes) bytes the gateway accepts in a header or ?token=; issue several tokens, or '*'")
        }
        print(token)
    }
}

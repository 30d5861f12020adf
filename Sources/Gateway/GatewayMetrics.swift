public import Prometheus
import Websockets

/// The gateway's Prometheus metrics.
public final class GatewayMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let connections: Gauge
    let subscriptions: Gauge
    let messagesOut: Counter
    let bytesOut: Counter
    let slowClientDisconnects: Counter
    let recoveriesOK: Counter
    let recoveriesFailed: Counter
    let gaps: Counter
    let pubsubLag: DurationHistogram
    let redisReconnects: Counter
    let redisUp: Gauge
    let refused: [String: Counter]
    let clientErrors: Counter
    let resultsReceived: Counter
    let batchedResults: Counter
    let framesLive: Gauge

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        func name(_ metric: String, _ unit: String = "", _ help: String) -> MetricNameDescriptor {
            MetricNameDescriptor(namespace: "gateway", metricName: metric, unitName: unit, helpText: help)
        }
        connections = registry.makeGauge(descriptor: name("connections", "", "Open WebSocket connections"))
        subscriptions = registry.makeGauge(descriptor: name("subscriptions", "", "Camera subscriptions over all clients (\"*\" counts once)"))
        messagesOut = registry.makeCounter(descriptor: name("messages_out", "total", "Frames queued to clients"))
        bytesOut = registry.makeCounter(descriptor: name("bytes_out", "total", "Payload bytes queued to clients"))
        slowClientDisconnects = registry.makeCounter(descriptor: name("slow_client_disconnects", "total", "Clients closed because their send queue went over the limit"))
        recoveriesOK = registry.makeCounter(descriptor: name("recoveries", "total", "Recoveries from a client position"), labels: [("result", "ok")])
        recoveriesFailed = registry.makeCounter(descriptor: name("recoveries", "total", "Recoveries from a client position"), labels: [("result", "failed")])
        gaps = registry.makeCounter(descriptor: name("gaps", "total", "Gap notices: live results lost and no longer in history"))
        pubsubLag = registry.makeDurationHistogram(descriptor: name("pubsub_lag", "seconds", "Probe message publish to receipt through Redis pub/sub"), buckets: [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(50), .milliseconds(250), .seconds(1)])
        redisReconnects = registry.makeCounter(descriptor: name("redis_reconnects", "total", "Pub/sub reconnects to Redis"))
        redisUp = registry.makeGauge(descriptor: name("redis_up", "", "1 while the pub/sub connection is up"))
        var refused: [String: Counter] = [:]
        for reason in ["auth", "origin", "limit", "rate", "path", "draining"] {
            refused[reason] = registry.makeCounter(descriptor: name("connections_refused", "total", "Upgrade requests refused, by reason"), labels: [("reason", reason)])
        }
        self.refused = refused
        clientErrors = registry.makeCounter(descriptor: name("client_errors", "total", "Client frames answered with an error"))
        resultsReceived = registry.makeCounter(descriptor: name("results_received", "total", "Results received from Redis pub/sub"))
        batchedResults = registry.makeCounter(descriptor: name("batched_results", "total", "Results sent inside a batched \"results\" frame"))
        framesLive = registry.makeGauge(descriptor: name("outbound_frames", "", "Encoded frames in memory (queued for at least one client, or being built)"))
    }

    /// Prometheus text exposition format.
    public func render() -> [UInt8] {
        framesLive.set(Double(OutboundFrame.liveCount))
        return registry.emitToBuffer()
    }
}

import Aggregator
import OwnThread
import ServiceLifecycle
import Websockets

/// The aggregator's `/metrics` (Prometheus text) and `/healthz` (its health snapshot), served
/// over HTTP from `init` until the service group's graceful shutdown.
struct MetricsEndpoint: Service, CustomStringConvertible {
    private let server: HTTPServer
    let description = "metrics endpoint"

    /// Starts serving `aggregator`'s metrics and health on `host:port`.
    init(host: String, port: Int, aggregator: AggregatorService) throws {
        server = try HTTPServer(host: host, port: port) { request in
            Self.respond(to: request, aggregator: aggregator)
        }
    }

    static func respond(to request: HTTPRequest, aggregator: AggregatorService) -> HTTPResponse {
        switch request.path {
        case "/metrics":
            return HTTPResponse(contentType: "text/plain; version=0.0.4", body: aggregator.metrics.render())
        case "/healthz":
            let health = aggregator.health
            return .json(health.json, status: health.ready ? 200 : 503)
        default:
            return .json(#"{"error":"not found","paths":["/metrics","/healthz"]}"#, status: 404)
        }
    }

    /// Serves until graceful shutdown (or cancellation), then stops the server.
    func run() async throws {
        do {
            try await gracefulShutdown()
        } catch {
            await stop() // cancelled (it throws nothing else): the group is going down
            throw error
        }
        await stop()
    }

    /// The server's stop waits for its thread: on a thread of its own, not the pool's.
    private func stop() async {
        let server = self.server
        await onOwnThread { server.stop() }
    }
}

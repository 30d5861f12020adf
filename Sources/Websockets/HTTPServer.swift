/// A plain HTTP server for synchronous handlers (health and metrics endpoints).
///
/// A `WebServer` whose delegate answers every request at once on the service thread; the
/// handler must be quick and must not block.
public final class HTTPServer: Sendable {
    private let server: WebServer
    public let port: Int

    /// Starts listening on `host:port` (host nil: all interfaces).
    public init(host: String? = "127.0.0.1", port: Int, handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse) throws {
        var configuration = WebServerConfiguration(host: host, port: port)
        configuration.name = "http"
        server = try WebServer(configuration: configuration)
        server.start(delegate: ClosureDelegate(executor: server.executor, handler: handler))
        self.port = port
    }

    /// Stops serving and waits for the service thread to finish.
    public func stop() {
        server.stop()
    }
}

/// Answers with the handler, on the server's thread.
private actor ClosureDelegate: WebServerDelegate {
    let executor: any SerialExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    let handler: @Sendable (HTTPRequest) -> HTTPResponse

    init(executor: any SerialExecutor, handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse) {
        self.executor = executor
        self.handler = handler
    }

    func handle(_ request: HTTPRequest, responder: HTTPResponder) { responder.respond(handler(request)) }
}



/// Identifies one open WebSocket connection of a `WebServer`.
public typealias WebSocketID = UInt64

/// How a `WebServer` listens and how much it lets each connection hold.
public struct WebServerConfiguration: Sendable {
    /// Address to bind; nil binds all interfaces.
    public var host: String? = "127.0.0.1"
    public var port: Int
    /// Largest inbound WebSocket message (all fragments together); larger ones close the
    /// connection with 1009.
    public var maximumInboundMessageBytes = 64 * 1024
    /// Bytes a connection may have queued for sending; over it, `send` refuses and the connection
    /// is closed with 1008 (a slow client never grows memory without bound).
    public var maximumQueuedBytes = 1 << 20
    /// A connection silent this long gets a PING (nil: lws default).
    public var pingInterval: Duration? = .seconds(20)
    /// A connection without valid traffic (a PONG counts) this long is closed.
    public var idleTimeout: Duration? = .seconds(60)
    /// Longest request target (path and query) answered; longer ones get 414.
    public var maximumURIBytes = 16 * 1024
    /// Most bytes of request line and headers answered; more get 431. lws keeps a buffer a bit
    /// larger than this (`headerBufferBytes`): a request over that is closed unanswered, since
    /// libwebsockets 4.1 cannot answer once its header buffer is full.
    public var maximumHeaderBytes = 20 * 1024
    /// lws' per-request header buffer (allocated only while a request's headers are read).
    var headerBufferBytes: Int { min(65_000, maximumHeaderBytes + 4 * 1024) }
    /// Thread name.
    public var name = "web"

    public init(host: String? = "127.0.0.1", port: Int) {
        self.host = host
        self.port = port
    }
}

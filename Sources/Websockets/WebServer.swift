import CWebsockets
import Foundation
import Synchronization

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

/// What a `WebServer` asks of its owner: an actor that runs on the server's own thread (its
/// `unownedExecutor` is the server's `executor`), so the lws callbacks call it
/// synchronously and its state is confined to that thread by the compiler. Every method must
/// return quickly without blocking; slow work runs in a task (which comes back to the actor when
/// it awaits) or answers later through the `HTTPResponder`.
public protocol WebServerDelegate: Actor {
    /// An HTTP request; answer through `responder`, now or later, from any thread.
    func handle(_ request: HTTPRequest, responder: HTTPResponder)
    /// A WebSocket upgrade request; the default refuses them all.
    func shouldAccept(_ request: HTTPRequest) -> UpgradeDecision
    /// A WebSocket connection is open.
    func opened(_ connection: WebSocketID, request: HTTPRequest)
    /// A complete inbound message (fragments reassembled).
    func received(_ connection: WebSocketID, message: [UInt8], isBinary: Bool)
    /// A WebSocket connection is gone (closed by either side or dropped).
    func closed(_ connection: WebSocketID)
}

extension WebServerDelegate {
    public func shouldAccept(_ request: HTTPRequest) -> UpgradeDecision { .reject(status: 404, reason: "no WebSocket here") }
    public func opened(_ connection: WebSocketID, request: HTTPRequest) {}
    public func received(_ connection: WebSocketID, message: [UInt8], isBinary: Bool) {}
    public func closed(_ connection: WebSocketID) {}
}

/// The calls an lws callback makes: on the service thread, which is the delegate's executor
/// (`assumeIsolated` checks that at run time; the protocol's isolation checks the rest).
extension WebServerDelegate {
    nonisolated func callHandle(_ request: HTTPRequest, responder: HTTPResponder) { assumeIsolated { $0.handle(request, responder: responder) } }
    nonisolated func callShouldAccept(_ request: HTTPRequest) -> UpgradeDecision { assumeIsolated { $0.shouldAccept(request) } }
    nonisolated func callOpened(_ connection: WebSocketID, request: HTTPRequest) { assumeIsolated { $0.opened(connection, request: request) } }
    nonisolated func callReceived(_ connection: WebSocketID, message: [UInt8], isBinary: Bool) {
        assumeIsolated { $0.received(connection, message: message, isBinary: isBinary) }
    }
    nonisolated func callClosed(_ connection: WebSocketID) { assumeIsolated { $0.closed(connection) } }
}

/// What became of a frame handed to `WebServer.send`.
public enum SendOutcome: Sendable, Equatable {
    /// Accepted: queued until the socket is writable.
    case queued
    /// The connection's queue would exceed `maximumQueuedBytes`: it is being closed with 1008.
    case overLimit
    /// No such connection (already closed).
    case unknownConnection
}

/// An HTTP and WebSocket server on one libwebsockets context and one port.
///
/// One dedicated thread runs `lws_service`, and is also a Swift executor: the delegate is an
/// actor running there, and the connection methods (`send`, `close`) are called from it. Each
/// connection has its own bounded queue of shared `OutboundFrame`s, written as the socket
/// accepts them.
///
/// This is the owner's handle; the server itself (`WebServerCore`) is kept alive by its thread
/// until the context is destroyed, so the handle's last reference may go anywhere — on the
/// service thread too, where `deinit` only asks the loop to stop.
public final class WebServer: Sendable {
    let core: WebServerCore

    /// Listens (connections wait in the backlog until `start(delegate:)`); throws when the port
    /// cannot be bound.
    public init(configuration: WebServerConfiguration) throws {
        core = try WebServerCore(configuration: configuration)
    }

    deinit { core.stop() }

    public var configuration: WebServerConfiguration { core.configuration }

    /// The executor of the service thread. The delegate actor keeps it (a strong reference:
    /// its tasks may outlive this handle) and returns it as its `unownedExecutor`.
    public var executor: any SerialExecutor { core.loop }

    /// Starts serving with `delegate`, an actor whose `unownedExecutor` is this server's (once).
    public func start(delegate: any WebServerDelegate) { core.start(delegate: delegate) }

    /// Runs `work` on the service thread, for threads that are not Swift tasks (a C library's,
    /// a timer's); a delegate actor wraps it in `assumeIsolated`. Returns false (and drops
    /// `work`) once the server is stopping.
    @discardableResult
    public func execute(_ work: @escaping @Sendable () -> Void) -> Bool { core.loop.execute(work) }

    /// Stops serving: open connections are dropped, the thread ends. From any other thread it
    /// returns once the thread has ended; on the service thread it asks and returns. Jobs of the
    /// delegate actor that arrive later still run (on a private queue), seeing no connections.
    public func stop() { core.stop() }

    /// Queues `frame` for `connection` (see `WebServerCore.send`). From the delegate actor.
    @discardableResult
    public func send(_ frame: OutboundFrame, to connection: WebSocketID, allowance: Int = 0) -> SendOutcome {
        assert(core.loop.isIsolatingCurrentContext() == true, "WebServer.send off the service thread")
        return core.send(frame, to: connection, allowance: allowance)
    }

    /// Closes a connection with a close frame (after its queue when `flush`). From the delegate actor.
    public func close(_ connection: WebSocketID, code: UInt16, reason: String, flush: Bool = false) {
        assert(core.loop.isIsolatingCurrentContext() == true, "WebServer.close off the service thread")
        core.close(connection, code: code, reason: reason, flush: flush)
    }

    /// Open WebSocket connections. From the delegate actor.
    public var connectionCount: Int { core.connectionCount }
}

/// The server behind a `WebServer` handle: the lws context's callback target and every
/// connection's state. Its thread holds it until the context is destroyed.
///
/// `@unchecked Sendable`: the handle holds it from any thread, but its mutable state (the
/// connection tables) is touched only by lws callbacks and by the delegate actor, both on the
/// service thread (or, once the thread ended, on the executor's serial afterlife queue); the
/// delegate is set before the thread starts and cleared after it ended.
final class WebServerCore: ServiceLoopOwner, @unchecked Sendable {
    public let configuration: WebServerConfiguration
    let loop: ServiceLoop
    private var delegate: (any WebServerDelegate)?
    private let table = ProtocolTable(name: "traffic", callback: webServerCallback)

    // Service-thread state.
    private var connections: [WebSocketID: Connection] = [:]
    /// Open WebSocket connections by socket, for the frame guard's reports.
    private var byDescriptor: [Int32: WebSocketID] = [:]
    private var upgrades: [OpaquePointer: HTTPRequest] = [:]
    private var exchanges: [UInt64: Exchange] = [:]
    private var nextID: UInt64 = 1

    /// Starts listening; connections wait in the listen backlog until `start(delegate:)`.
    init(configuration: WebServerConfiguration) throws {
        lws_set_log_level(Int32(LLL_ERR), nil)
        self.configuration = configuration
        loop = ServiceLoop()
        let protocols = table.protocols
        let policy = table.policy
        let ping = UInt16(clamping: configuration.pingInterval.map { $0.components.seconds } ?? 0)
        let hangup = UInt16(clamping: configuration.idleTimeout.map { $0.components.seconds } ?? 0)
        let user = Unmanaged.passUnretained(self).toOpaque()
        let context: OpaquePointer? = if let host = configuration.host {
            host.withCString { traffic_lws_create_server($0, Int32(configuration.port), protocols, user, ping, hangup, policy, loop.eventLoop, UInt16(configuration.headerBufferBytes)) }
        } else {
            traffic_lws_create_server(nil, Int32(configuration.port), protocols, user, ping, hangup, policy, loop.eventLoop, UInt16(configuration.headerBufferBytes))
        }
        guard let context else {
            throw HTTPServerError(message: "cannot listen on \(configuration.host ?? "*"):\(configuration.port) (port in use?)")
        }
        self.context = context
        traffic_frame_guard_context_started(context)
    }

    private let startOnce = Mutex(false)
    private var context: OpaquePointer?

    /// Starts serving with `delegate` (once).
    func start(delegate: any WebServerDelegate) {
        let first = startOnce.withLock { started -> Bool in
            defer { started = true }
            return !started
        }
        guard first, let context else { return }
        self.delegate = delegate // before the thread starts: it happens-before every callback
        loop.start(context: context, name: "\(configuration.name)-\(configuration.port)", owner: self)
    }

    /// Stops serving: open connections are dropped, the thread ends.
    func stop() {
        let neverStarted = startOnce.withLock { started -> Bool in
            defer { started = true }
            return !started
        }
        if neverStarted, let context {
            traffic_frame_guard_context_stopping(context)
            lws_context_destroy(context)
            self.context = nil
        }
        loop.stop()
    }

    /// The thread's last act: the delegate (which usually holds the handle) is let go.
    func serviceEnded() {
        delegate = nil
    }

    // MARK: Service-thread API

    /// Queues `frame` for `connection`; `allowance` lets one bounded burst (a snapshot, a
    /// recovery) take the queue that far past `maximumQueuedBytes`. Service thread only.
    @discardableResult
    public func send(_ frame: OutboundFrame, to connection: WebSocketID, allowance: Int = 0) -> SendOutcome {
        guard let c = connections[connection], c.closeRequest == nil else { return .unknownConnection }
        // Live frames are judged by what is queued besides an ongoing burst; a burst frame may
        // use its allowance on top of everything. "Too slow" is a backlog the client fails to
        // drain, never one large frame: the largest queued frame does not count.
        let queued = (allowance > 0 ? c.queuedBytes : c.queuedBytes - c.burstBytes) + frame.count
        let largest = max(c.largestLiveFrame.map { c.frames[$0].count } ?? 0, allowance > 0 ? 0 : frame.count)
        if queued - largest > configuration.maximumQueuedBytes + allowance {
            requestClose(c, code: 1008, reason: "send queue over \(configuration.maximumQueuedBytes) bytes: client too slow")
            return .overLimit
        }
        if allowance == 0, frame.count >= (c.largestLiveFrame.map { c.frames[$0].count } ?? 0) {
            c.largestLiveFrame = c.frames.count // ties: the later one, so it is passed last
        }
        c.frames.append(frame)
        c.burst.append(allowance > 0)
        c.queuedBytes += frame.count
        if allowance > 0 { c.burstBytes += frame.count }
        if c.frames.count - c.head == 1 { lws_callback_on_writable(c.wsi) }
        return .queued
    }

    /// Closes `connection` with a close code and reason: after the frames already queued when
    /// `flush` (bounded by the close timeout), else at once, dropping them. Service thread only.
    public func close(_ connection: WebSocketID, code: UInt16, reason: String, flush: Bool = false) {
        guard let c = connections[connection], c.closeRequest == nil else { return }
        requestClose(c, code: code, reason: reason, keepQueued: flush)
    }

    /// Open WebSocket connections. Service thread only.
    public var connectionCount: Int { connections.count }

    private func requestClose(_ c: Connection, code: UInt16, reason: String, keepQueued: Bool = false) {
        c.closeRequest = (code, reason)
        if !keepQueued { c.clearQueue(keepingCapacity: false) }
        lws_callback_on_writable(c.wsi)
        // A client that does not read never makes the socket writable for the close frame:
        // give the close handshake a bounded time, then drop the connection.
        lws_set_timeout(c.wsi, PENDING_TIMEOUT_USER_OK, 2)
    }

    // MARK: Callback handling

    fileprivate func callback(_ wsi: OpaquePointer, _ reason: lws_callback_reasons, _ user: UnsafeMutableRawPointer?, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        switch reason {
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
            closeViolators()
            loop.drain()
            return 0

        case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
            // Watched from the first byte, so frames sent with the upgrade request are seen too.
            if traffic_frame_guard_watch(lws_get_socket_fd(wsi), lws_get_context(wsi)) != 0 {
                return -1 // a descriptor the guard cannot watch: refuse rather than serve unguarded
            }
            return 0

        case LWS_CALLBACK_HTTP:
            let path = input.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) } ?? "/"
            let id = nextID
            nextID += 1
            lws_set_opaque_user_data(wsi, UnsafeMutableRawPointer(bitPattern: UInt(id)))
            let request = readRequest(wsi, path: path)
            if let refusal = refusal(of: request, wsi) {
                // Answered at once; the connection closes after it (a body may follow a POST).
                _ = write(refusal, on: wsi, method: request.method)
                return -1
            }
            exchanges[id] = Exchange(wsi: wsi, method: request.method)
            let responder = HTTPResponder { [weak self] response in
                guard let server = self else { return }
                server.loop.execute { server.finish(exchange: id, with: response) }
            }
            guard let delegate else { finish(exchange: id, with: .error(503, "shutting down")); return 0 }
            delegate.callHandle(request, responder: responder)
            return 0

        case LWS_CALLBACK_HTTP_BODY, LWS_CALLBACK_HTTP_BODY_COMPLETION:
            // Bodies are never read (only GET and HEAD are served); lws discards them.
            return 0

        case LWS_CALLBACK_HTTP_WRITEABLE:
            let id = UInt64(UInt(bitPattern: lws_get_opaque_user_data(wsi)))
            guard let exchange = exchanges[id], let response = exchange.response else { return 0 }
            exchanges[id] = nil
            return write(response, on: wsi, method: exchange.method)

        case LWS_CALLBACK_CLOSED_HTTP:
            let id = UInt64(UInt(bitPattern: lws_get_opaque_user_data(wsi)))
            exchanges[id] = nil
            upgrades[wsi] = nil
            traffic_frame_guard_forget(lws_get_socket_fd(wsi))
            return 0

        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION:
            let path = header(wsi, WSI_TOKEN_GET_URI) ?? "/"
            let request = readRequest(wsi, path: path)
            if let refusal = refusal(of: request, wsi) {
                _ = write(refusal, on: wsi, method: "GET")
                return 1
            }
            switch delegate?.callShouldAccept(request) ?? .reject(status: 503, reason: "shutting down") {
            case .accept:
                upgrades[wsi] = request
                return 0
            case .reject(let status, let reason):
                // A JSON body with the reason escaped (never lws' HTML page, which echoes it raw).
                _ = write(.error(status, reason), on: wsi, method: "GET")
                return 1
            }

        case LWS_CALLBACK_ESTABLISHED:
            let id = nextID
            nextID += 1
            lws_set_opaque_user_data(wsi, UnsafeMutableRawPointer(bitPattern: UInt(id)))
            let connection = Connection(id: id, wsi: wsi, descriptor: lws_get_socket_fd(wsi))
            connections[id] = connection
            byDescriptor[connection.descriptor] = id
            traffic_frame_guard_upgrade(connection.descriptor)
            let request = upgrades.removeValue(forKey: wsi) ?? HTTPRequest(path: "/")
            delegate?.callOpened(id, request: request)
            return 0

        case LWS_CALLBACK_RECEIVE:
            guard let c = connection(of: wsi), c.closeRequest == nil else { return 0 }
            if traffic_frame_guard_violated(c.descriptor) != 0 {
                // RFC 6455 §5.1: a client frame without a mask is a protocol error.
                requestClose(c, code: 1002, reason: "client frames must be masked")
                c.inbound = []
                return 0
            }
            if lws_is_first_fragment(wsi) != 0 { c.inbound.removeAll(keepingCapacity: true) }
            if c.inbound.count + length > configuration.maximumInboundMessageBytes {
                requestClose(c, code: 1009, reason: "message over \(configuration.maximumInboundMessageBytes) bytes")
                c.inbound = []
                return 0
            }
            if let input, length > 0 {
                c.inbound.append(contentsOf: UnsafeRawBufferPointer(start: input, count: length))
            }
            if lws_is_final_fragment(wsi) != 0, lws_remaining_packet_payload(wsi) == 0 {
                let message = c.inbound
                c.inbound.removeAll(keepingCapacity: c.inbound.count <= 4096)
                delegate?.callReceived(c.id, message: message, isBinary: lws_frame_is_binary(wsi) != 0)
            }
            return 0

        case LWS_CALLBACK_SERVER_WRITEABLE:
            guard let c = connection(of: wsi) else { return 0 }
            if let (code, reason) = c.closeRequest, c.head == c.frames.count {
                var bytes = Array(reason.utf8.prefix(120))
                lws_close_reason(wsi, lws_close_status(rawValue: UInt32(code)), &bytes, bytes.count)
                return -1
            }
            while c.head < c.frames.count {
                let frame = c.frames[c.head]
                if lws_write(wsi, frame.payload, frame.count, LWS_WRITE_TEXT) < 0 { return -1 }
                if c.burst[c.head] { c.burstBytes -= frame.count }
                c.head += 1
                c.queuedBytes -= frame.count
                if let largest = c.largestLiveFrame, largest < c.head { c.findLargestLiveFrame() }
                // (No need to ask the socket after the last frame: one poll(2) less per round.)
                if c.head < c.frames.count, lws_send_pipe_choked(wsi) != 0 { break }
            }
            if c.head == c.frames.count {
                c.clearQueue(keepingCapacity: c.frames.count <= 64)
                if c.closeRequest != nil { lws_callback_on_writable(wsi) }
            } else {
                if c.head >= 64 {
                    c.frames.removeFirst(c.head)
                    c.burst.removeFirst(c.head)
                    c.largestLiveFrame = c.largestLiveFrame.map { $0 - c.head }
                    c.head = 0
                }
                lws_callback_on_writable(wsi)
            }
            return 0

        case LWS_CALLBACK_CLOSED:
            guard let c = connection(of: wsi) else { return 0 }
            traffic_frame_guard_forget(c.descriptor)
            byDescriptor[c.descriptor] = nil
            connections[c.id] = nil
            delegate?.callClosed(c.id)
            return 0

        default:
            return lws_callback_http_dummy(wsi, reason, user, input, length)
        }
    }

    /// Closes (1002) the connections whose descriptors the frame guard found sending unmasked
    /// frames, control frames included (lws answers those by itself).
    private func closeViolators() {
        guard let context else { return }
        var fds = [Int32](repeating: 0, count: 64)
        while true {
            let count = Int(traffic_frame_guard_take(context, &fds, Int32(fds.count)))
            for fd in fds.prefix(count) {
                if let id = byDescriptor[fd], let c = connections[id], c.closeRequest == nil {
                    requestClose(c, code: 1002, reason: "client frames must be masked")
                }
            }
            if count < fds.count { return }
        }
    }

    private func connection(of wsi: OpaquePointer) -> Connection? {
        connections[UInt64(UInt(bitPattern: lws_get_opaque_user_data(wsi)))]
    }

    private func finish(exchange id: UInt64, with response: HTTPResponse) {
        guard let exchange = exchanges[id], exchange.response == nil else { return }
        exchange.response = response
        lws_callback_on_writable(exchange.wsi)
    }

    /// Requests answered by the server itself: over the URI or header budget (414, 431), or a
    /// method other than GET and HEAD (405).
    private func refusal(of request: HTTPRequest, _ wsi: OpaquePointer) -> HTTPResponse? {
        let uriBytes = Int(lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI)) + Int(lws_hdr_total_length(wsi, WSI_TOKEN_POST_URI))
            + Int(lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS))
        if uriBytes > configuration.maximumURIBytes {
            return .error(414, "request target of \(uriBytes) bytes is over the \(configuration.maximumURIBytes)-byte limit")
        }
        var headerBytes = 0
        for token in 0..<Int(WSI_TOKEN_COUNT.rawValue) {
            headerBytes += Int(lws_hdr_total_length(wsi, lws_token_indexes(rawValue: UInt32(token))))
        }
        if headerBytes > configuration.maximumHeaderBytes {
            return .error(431, "request headers of \(headerBytes) bytes are over the \(configuration.maximumHeaderBytes)-byte limit")
        }
        if request.method != "GET" && request.method != "HEAD" {
            var response = HTTPResponse.error(405, "method \(request.method) is not allowed; use GET")
            response.headers.append(("allow", "GET, HEAD"))
            return response
        }
        return nil
    }

    private func write(_ response: HTTPResponse, on wsi: OpaquePointer, method: String) -> Int32 {
        let pre = traffic_lws_pre()
        var header = [UInt8](repeating: 0, count: pre + 2048)
        let ok = header.withUnsafeMutableBufferPointer { buffer -> Bool in
            let start = buffer.baseAddress! + pre
            var cursor: UnsafeMutablePointer<UInt8>? = start
            let end = buffer.baseAddress! + buffer.count - 1
            if lws_add_http_common_headers(wsi, UInt32(response.status), response.contentType, lws_filepos_t(response.body.count), &cursor, end) != 0 { return false }
            guard Self.replaceStatusLine(status: response.status, from: start, to: &cursor, end: end) else { return false }
            for (name, value) in response.headers where !appendHTTPHeader(wsi, name: name, value: value, cursor: &cursor, end: end) {
                return false
            }
            return lws_finalize_write_http_header(wsi, start, &cursor, end) == 0
        }
        if !ok { return -1 }
        if !response.body.isEmpty && method != "HEAD" {
            var frame = [UInt8](repeating: 0, count: pre + response.body.count)
            frame.replaceSubrange(pre..<(pre + response.body.count), with: response.body)
            let written = frame.withUnsafeMutableBufferPointer { buffer in
                lws_write(wsi, buffer.baseAddress! + pre, response.body.count, LWS_WRITE_HTTP_FINAL)
            }
            if written < response.body.count { return -1 }
        }
        return lws_http_transaction_completed(wsi) != 0 ? -1 : 0
    }

    private func header(_ wsi: OpaquePointer, _ token: lws_token_indexes) -> String? {
        let length = Int(lws_hdr_total_length(wsi, token))
        guard length > 0, length <= configuration.headerBufferBytes else { return nil }
        var buffer = [CChar](repeating: 0, count: length + 1)
        guard lws_hdr_copy(wsi, &buffer, Int32(buffer.count), token) >= 0 else { return nil }
        return string(fromCBuffer: buffer)
    }

    /// lws writes a status line without a reason phrase for codes it does not know (429, 431…):
    /// this rewrites the first line of the header block as `HTTP/1.1 <code> <phrase>`.
    static func replaceStatusLine(status: Int, from start: UnsafeMutablePointer<UInt8>, to cursor: inout UnsafeMutablePointer<UInt8>?, end: UnsafeMutablePointer<UInt8>) -> Bool {
        guard let current = cursor else { return false }
        let block = UnsafeMutableBufferPointer(start: start, count: current - start)
        guard let lineEnd = block.indices.first(where: { $0 + 1 < block.count && block[$0] == 13 && block[$0 + 1] == 10 }) else { return false }
        // HTTP/1.1 always: the highest version this server speaks (lws writes 1.0 for a refused
        // upgrade, whose request it has not fully taken yet).
        let line = Array("HTTP/1.1 \(status) \(HTTPStatus.reasonPhrase(status))".utf8)
        let rest = Array(block[lineEnd...])
        guard line.count + rest.count <= end - start else { return false }
        for (i, byte) in (line + rest).enumerated() { start[i] = byte }
        cursor = start + line.count + rest.count
        return true
    }

    private func readRequest(_ wsi: OpaquePointer, path: String) -> HTTPRequest {
        var request = HTTPRequest(path: path)
        if let q = path.firstIndex(of: "?") { request.path = String(path[..<q]) }
        var uri: UnsafeMutablePointer<CChar>?
        var uriLength: Int32 = 0
        request.method = switch lws_http_get_uri_and_method(wsi, &uri, &uriLength) {
        case Int32(LWSHUMETH_GET): "GET"
        case Int32(LWSHUMETH_POST): "POST"
        case Int32(LWSHUMETH_OPTIONS): "OPTIONS"
        case Int32(LWSHUMETH_PUT): "PUT"
        case Int32(LWSHUMETH_PATCH): "PATCH"
        case Int32(LWSHUMETH_DELETE): "DELETE"
        case Int32(LWSHUMETH_HEAD): "HEAD"
        default: "UNKNOWN"
        }
        for (name, token) in [("authorization", WSI_TOKEN_HTTP_AUTHORIZATION), ("origin", WSI_TOKEN_ORIGIN), ("user-agent", WSI_TOKEN_HTTP_USER_AGENT), ("x-forwarded-for", WSI_TOKEN_X_FORWARDED_FOR)] {
            if let value = header(wsi, token) { request.headers[name] = value }
        }
        var buffer = [CChar](repeating: 0, count: 4096)
        var index: Int32 = 0
        while index < 64 {
            let length = Int(lws_hdr_fragment_length(wsi, WSI_TOKEN_HTTP_URI_ARGS, index))
            guard length > 0 else { break }
            if buffer.count <= length { buffer = [CChar](repeating: 0, count: length + 1) }
            guard lws_hdr_copy_fragment(wsi, &buffer, Int32(buffer.count), WSI_TOKEN_HTTP_URI_ARGS, index) > 0 else { break }
            let argument = string(fromCBuffer: buffer)
            if let eq = argument.firstIndex(of: "=") {
                request.query[String(argument[..<eq])] = String(argument[argument.index(after: eq)...])
            } else {
                request.query[argument] = ""
            }
            index += 1
        }
        if lws_get_peer_simple(wsi, &buffer, buffer.count) != nil { request.peer = string(fromCBuffer: buffer) }
        return request
    }
}

/// One WebSocket connection's state; service thread only.
private final class Connection {
    let id: WebSocketID
    let wsi: OpaquePointer
    /// The socket, watched by the unmasked-frame guard while the connection is open.
    let descriptor: Int32
    var frames: [OutboundFrame] = []
    /// Per queued frame: sent as part of a burst (snapshot, recovery).
    var burst: [Bool] = []
    /// Bytes of burst frames still queued.
    var burstBytes = 0
    var head = 0
    var queuedBytes = 0
    /// Index in `frames` of the largest live (non-burst) frame still queued: it does not count
    /// toward "too slow". Among equal sizes the latest, so it is rarely passed and searched again.
    var largestLiveFrame: Int?
    var closeRequest: (UInt16, String)?
    var inbound: [UInt8] = []

    /// Drops every queued frame (sent, or the connection is closing).
    func clearQueue(keepingCapacity: Bool) {
        frames.removeAll(keepingCapacity: keepingCapacity)
        burst.removeAll(keepingCapacity: true)
        head = 0
        queuedBytes = 0
        burstBytes = 0
        largestLiveFrame = nil
    }

    /// Finds the largest live frame after the head (the previous one was sent).
    func findLargestLiveFrame() {
        largestLiveFrame = nil
        var size = -1
        for index in head..<frames.count where !burst[index] && frames[index].count >= size {
            largestLiveFrame = index
            size = frames[index].count
        }
    }

    init(id: WebSocketID, wsi: OpaquePointer, descriptor: Int32) {
        self.id = id
        self.wsi = wsi
        self.descriptor = descriptor
    }
}

/// One HTTP request waiting for its response; service thread only.
private final class Exchange {
    let wsi: OpaquePointer
    let method: String
    var response: HTTPResponse?
    init(wsi: OpaquePointer, method: String) {
        self.wsi = wsi
        self.method = method
    }
}

/// A server that could not start.
public struct HTTPServerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "HTTP server: \(message)" }
}

private let webServerCallback: LWSCallback = { wsi, reason, user, input, length in
    guard let wsi, let context = lws_get_context(wsi), let raw = lws_context_user(context) else { return 0 }
    // The service thread holds the core until the context is destroyed: no reference needed.
    return Unmanaged<WebServerCore>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.callback(wsi, reason, user, input, length) }
}

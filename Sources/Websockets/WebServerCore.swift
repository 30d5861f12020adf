import CWebsockets
import Foundation
import Synchronization
import Durations

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

    // Service-thread state (`connections`, `dirty` and `vectors` are internal for the frame
    // writer in WebSocketFrameWriter.swift).
    var connections: [WebSocketID: WebSocketConnection] = [:]
    /// Open WebSocket connections by socket, for the frame guard's reports.
    private var byDescriptor: [Int32: WebSocketID] = [:]
    private var upgrades: [OpaquePointer: HTTPRequest] = [:]
    private var exchanges: [UInt64: HTTPExchange] = [:]
    private var nextID: UInt64 = 1
    /// Connections with frames queued since the last flush (written at the end of the current
    /// callback or drain, together: a burst goes out in one `writev` per connection).
    var dirty: [WebSocketConnection] = []
    /// Scratch for `writev`, reused.
    var vectors: [iovec] = []
    /// The delegate asked for a `flushing()` call before the next writes.
    private var flushCallbackRequested = false

    /// Starts listening; connections wait in the listen backlog until `start(delegate:)`.
    init(configuration: WebServerConfiguration) throws {
        lws_set_log_level(Int32(LLL_ERR), nil)
        self.configuration = configuration
        loop = ServiceLoop()
        let protocols = table.protocols
        let policy = table.policy
        let ping = UInt16(clamping: configuration.pingInterval.map { $0.wholeSeconds } ?? 0)
        let hangup = UInt16(clamping: configuration.idleTimeout.map { $0.wholeSeconds } ?? 0)
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
        guard let c = connections[connection], c.closeRequest == nil, !c.failed else { return .unknownConnection }
        guard c.queue.append(frame, allowance: allowance, limit: configuration.maximumQueuedBytes) else {
            requestClose(c, code: 1008, reason: "send queue over \(configuration.maximumQueuedBytes) bytes: client too slow")
            return .overLimit
        }
        if !c.isDirty {
            c.isDirty = true
            dirty.append(c)
        }
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

    func requestClose(_ c: WebSocketConnection, code: UInt16, reason: String, keepQueued: Bool = false) {
        c.closeRequest = (code, reason)
        if !keepQueued { c.queue.removeAll(keepingCapacity: false) }
        waitForWritable(c)
        // A client that does not read never makes the socket writable for the close frame:
        // give the close handshake a bounded time, then drop the connection.
        lws_set_timeout(c.wsi, PENDING_TIMEOUT_USER_OK, 2)
    }

    // MARK: Callback handling

    fileprivate func callback(_ wsi: OpaquePointer, _ reason: lws_callback_reasons, _ user: UnsafeMutableRawPointer?, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        let result = handle(wsi, reason, user, input, length)
        if flushCallbackRequested {
            flushCallbackRequested = false
            delegate?.callFlushing()
        }
        // What the delegate (or a drained job) queued goes out now, without a writable round.
        if !dirty.isEmpty { flushDirty() }
        return result
    }

    func requestFlushCallback() {
        flushCallbackRequested = true
    }

    /// Answers one lws callback: each reason the server handles is a step of its own below.
    private func handle(_ wsi: OpaquePointer, _ reason: lws_callback_reasons, _ user: UnsafeMutableRawPointer?, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        switch reason {
        case LWS_CALLBACK_EVENT_WAIT_CANCELLED: return woken()
        case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED: return guardNewSocket(wsi)
        case LWS_CALLBACK_HTTP: return beginExchange(wsi, path: input)
        // Bodies are never read (only GET and HEAD are served); lws discards them.
        case LWS_CALLBACK_HTTP_BODY, LWS_CALLBACK_HTTP_BODY_COMPLETION: return 0
        case LWS_CALLBACK_HTTP_WRITEABLE: return writeResponse(wsi)
        case LWS_CALLBACK_CLOSED_HTTP: return closedHTTP(wsi)
        case LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION: return filterUpgrade(wsi)
        case LWS_CALLBACK_ESTABLISHED: return opened(wsi)
        case LWS_CALLBACK_RECEIVE: return received(wsi, input, length)
        case LWS_CALLBACK_SERVER_WRITEABLE: return writable(wsi)
        case LWS_CALLBACK_CLOSED: return closed(wsi)
        default: return lws_callback_http_dummy(wsi, reason, user, input, length)
        }
    }

    /// The loop was woken (`lws_cancel_service`): guard reports and queued jobs are handled.
    private func woken() -> Int32 {
        closeViolators()
        loop.drain()
        return 0
    }

    /// A new socket is watched by the frame guard from its first byte, so frames sent with the
    /// upgrade request are seen too; one the guard cannot watch is refused rather than served.
    private func guardNewSocket(_ wsi: OpaquePointer) -> Int32 {
        traffic_frame_guard_watch(lws_get_socket_fd(wsi), lws_get_context(wsi)) != 0 ? -1 : 0
    }

    /// An HTTP request arrived: refused at once when malformed or over budget, else handed to
    /// the delegate with a responder that may answer from any thread.
    private func beginExchange(_ wsi: OpaquePointer, path input: UnsafeMutableRawPointer?) -> Int32 {
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
        exchanges[id] = HTTPExchange(wsi: wsi, method: request.method)
        let responder = HTTPResponder { [weak self] response in
            guard let server = self else { return }
            server.loop.execute { server.finish(exchange: id, with: response) }
        }
        guard let delegate else { finish(exchange: id, with: .error(503, "shutting down")); return 0 }
        delegate.callHandle(request, responder: responder)
        return 0
    }

    /// The socket of an HTTP exchange whose response is ready can take it.
    private func writeResponse(_ wsi: OpaquePointer) -> Int32 {
        let id = UInt64(UInt(bitPattern: lws_get_opaque_user_data(wsi)))
        guard let exchange = exchanges[id], let response = exchange.response else { return 0 }
        exchanges[id] = nil
        return write(response, on: wsi, method: exchange.method)
    }

    /// An HTTP connection (or an upgrade that never completed) closed.
    private func closedHTTP(_ wsi: OpaquePointer) -> Int32 {
        let id = UInt64(UInt(bitPattern: lws_get_opaque_user_data(wsi)))
        exchanges[id] = nil
        upgrades[wsi] = nil
        traffic_frame_guard_forget(lws_get_socket_fd(wsi))
        return 0
    }

    /// A WebSocket upgrade: refused when malformed, else the delegate decides; an accepted
    /// request is kept for `opened`.
    private func filterUpgrade(_ wsi: OpaquePointer) -> Int32 {
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
    }

    /// A WebSocket connection is open: its state is made and the delegate told.
    private func opened(_ wsi: OpaquePointer) -> Int32 {
        // Frames are written straight to the socket: a connection that is not the socket's
        // own (a stream inside HTTP/2) cannot be served that way.
        guard lws_get_network_wsi(wsi) == wsi else { return -1 }
        let id = nextID
        nextID += 1
        lws_set_opaque_user_data(wsi, UnsafeMutableRawPointer(bitPattern: UInt(id)))
        let connection = WebSocketConnection(id: id, wsi: wsi, descriptor: lws_get_socket_fd(wsi))
        connections[id] = connection
        byDescriptor[connection.descriptor] = id
        traffic_frame_guard_upgrade(connection.descriptor)
        let request = upgrades.removeValue(forKey: wsi) ?? HTTPRequest(path: "/")
        delegate?.callOpened(id, request: request)
        return 0
    }

    /// A fragment of a client message: unmasked frames and messages over the inbound limit
    /// close the connection; a complete message goes to the delegate.
    private func received(_ wsi: OpaquePointer, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
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
    }

    /// A WebSocket's socket can take more: the close frame once the queue is empty, else the
    /// queued frames.
    private func writable(_ wsi: OpaquePointer) -> Int32 {
        guard let c = connection(of: wsi) else { return 0 }
        c.awaitingWritable = false
        if let (code, reason) = c.closeRequest, c.queue.isEmpty {
            var bytes = Array(reason.utf8.prefix(120))
            lws_close_reason(wsi, lws_close_status(rawValue: UInt32(code)), &bytes, bytes.count)
            return -1
        }
        guard !c.failed else { return -1 }
        return writeQueued(c) ? 0 : -1
    }

    /// A WebSocket connection closed: its state goes and the delegate is told.
    private func closed(_ wsi: OpaquePointer) -> Int32 {
        guard let c = connection(of: wsi) else { return 0 }
        traffic_frame_guard_forget(c.descriptor)
        byDescriptor[c.descriptor] = nil
        connections[c.id] = nil
        delegate?.callClosed(c.id)
        return 0
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

    private func connection(of wsi: OpaquePointer) -> WebSocketConnection? {
        connections[UInt64(UInt(bitPattern: lws_get_opaque_user_data(wsi)))]
    }

    private func finish(exchange id: UInt64, with response: HTTPResponse) {
        guard let exchange = exchanges[id], exchange.response == nil else { return }
        exchange.response = response
        lws_callback_on_writable(exchange.wsi)
    }
}

private let webServerCallback: LWSCallback = { wsi, reason, user, input, length in
    guard let wsi, let context = lws_get_context(wsi), let raw = lws_context_user(context) else { return 0 }
    // The service thread holds the core until the context is destroyed: no reference needed.
    return Unmanaged<WebServerCore>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.callback(wsi, reason, user, input, length) }
}

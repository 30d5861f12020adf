import CWebsockets
import Foundation
import Synchronization

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
    /// Connections with frames queued since the last flush (written at the end of the current
    /// callback or drain, together: a burst goes out in one `writev` per connection).
    private var dirty: [Connection] = []
    /// Scratch for `writev`, reused.
    private var vectors: [iovec] = []
    /// The delegate asked for a `flushing()` call before the next writes.
    private var flushCallbackRequested = false

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

    private func requestClose(_ c: Connection, code: UInt16, reason: String, keepQueued: Bool = false) {
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

    /// Writes every connection's frames queued since the last flush.
    private func flushDirty() {
        let batch = dirty
        dirty.removeAll(keepingCapacity: true)
        for c in batch {
            c.isDirty = false
            guard connections[c.id] === c, !c.awaitingWritable, !c.failed else { continue }
            if !writeQueued(c) { fail(c) }
        }
    }

    /// Writes `c`'s queued frames straight to its socket, as many per `writev` as it takes.
    /// What the socket does not take now waits for a writable callback: the rest of a frame
    /// cut short goes to lws' own buffer (so nothing lws writes itself — a PING, a close
    /// frame — can land inside it), whole frames stay queued. False when the socket failed.
    private func writeQueued(_ c: Connection) -> Bool {
        if lws_partial_buffered(c.wsi) != 0 {
            // lws still holds the rest of an earlier frame: it calls back once that is out.
            waitForWritable(c)
            return true
        }
        while !c.queue.isEmpty {
            vectors.removeAll(keepingCapacity: true)
            var offered = 0
            for frame in c.queue.frames[c.queue.head...] {
                let wire = frame.wire
                vectors.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: wire.baseAddress), iov_len: wire.count))
                offered += wire.count
                if vectors.count == 64 || offered >= 256 * 1024 { break }
            }
            // sendmsg rather than writev: MSG_NOSIGNAL, so a client that reset its connection
            // is an EPIPE here even if SIGPIPE's disposition was ever restored.
            let written = vectors.withUnsafeMutableBufferPointer { iov -> Int in
                var message = msghdr()
                message.msg_iov = iov.baseAddress
                message.msg_iovlen = iov.count
                return sendmsg(c.descriptor, &message, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN || errno == EWOULDBLOCK {
                    waitForWritable(c)
                    return true
                }
                return false
            }
            var remaining = written
            while remaining > 0, let frame = c.queue.first {
                let wire = frame.wire
                if remaining >= wire.count {
                    remaining -= wire.count
                    c.queue.removeFirst()
                    continue
                }
                // Cut short: lws takes (and copies) the rest and sends it before anything else.
                // LWS_WRITE_HTTP is LWS_WRITE_RAW: the bytes as they are, nothing written before
                // them (lws_issue_raw), so the shared frame is passed as it is.
                let rest = UnsafeRawBufferPointer(rebasing: wire[remaining...])
                let handed = lws_write(c.wsi, UnsafeMutablePointer(mutating: rest.baseAddress!.assumingMemoryBound(to: UInt8.self)), rest.count, LWS_WRITE_HTTP)
                if handed < 0 { return false }
                c.queue.removeFirst()
                remaining = 0
                waitForWritable(c)
                c.queue.compact()
                return true
            }
            if written < offered {
                waitForWritable(c) // the socket is full
                c.queue.compact()
                return true
            }
        }
        c.queue.compact()
        // A close waiting for the queue to drain goes out from the writable callback.
        if c.closeRequest != nil { waitForWritable(c) }
        return true
    }

    /// The socket failed: nothing more is written (a frame partly on the wire must never be
    /// started again), and lws drops the connection on its own schedule.
    private func fail(_ c: Connection) {
        c.failed = true
        c.queue.removeAll(keepingCapacity: false)
        lws_set_timeout(c.wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC)
    }

    private func waitForWritable(_ c: Connection) {
        c.awaitingWritable = true
        lws_callback_on_writable(c.wsi)
    }

    private func handle(_ wsi: OpaquePointer, _ reason: lws_callback_reasons, _ user: UnsafeMutableRawPointer?, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
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
            // Frames are written straight to the socket: a connection that is not the socket's
            // own (a stream inside HTTP/2) cannot be served that way.
            guard lws_get_network_wsi(wsi) == wsi else { return -1 }
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
            c.awaitingWritable = false
            if let (code, reason) = c.closeRequest, c.queue.isEmpty {
                var bytes = Array(reason.utf8.prefix(120))
                lws_close_reason(wsi, lws_close_status(rawValue: UInt32(code)), &bytes, bytes.count)
                return -1
            }
            guard !c.failed else { return -1 }
            return writeQueued(c) ? 0 : -1

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

}

/// One WebSocket connection's state; service thread only.
private final class Connection {
    let id: WebSocketID
    let wsi: OpaquePointer
    /// The socket, watched by the unmasked-frame guard while the connection is open.
    let descriptor: Int32
    var queue = OutboundQueue()
    /// In the flush list.
    var isDirty = false
    /// A write to the socket failed: nothing more is written to it.
    var failed = false
    /// The socket was full (or lws holds part of a frame): writes wait for the writable callback.
    var awaitingWritable = false
    var closeRequest: (UInt16, String)?
    var inbound: [UInt8] = []

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

private let webServerCallback: LWSCallback = { wsi, reason, user, input, length in
    guard let wsi, let context = lws_get_context(wsi), let raw = lws_context_user(context) else { return 0 }
    // The service thread holds the core until the context is destroyed: no reference needed.
    return Unmanaged<WebServerCore>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.callback(wsi, reason, user, input, length) }
}

import CWebsockets
import Foundation

/// Something that happened to a client connection of `WebSocketClients`.
public enum WebSocketClientEvent: Sendable {
    case opened(WebSocketID)
    /// One complete message (fragments reassembled).
    case message(WebSocketID, [UInt8])
    /// The connection closed; `code` and `reason` are the peer's close frame, when it sent one.
    case closed(WebSocketID, code: UInt16?, reason: String)
    /// The connection could not be opened (refused, handshake not 101…).
    case failed(WebSocketID, reason: String)
}

/// Many WebSocket client connections on one libwebsockets client context and one thread.
///
/// For load generators, tests and tools: thousands of connections cost one thread. Events reach
/// `handler` on the service thread, which must return quickly; the other methods are safe from
/// any thread. This is the owner's handle: its last reference may go on any thread (the
/// service thread too); the connections' state lives in a core its thread holds until the
/// context is destroyed.
public final class WebSocketClients: Sendable {
    let core: WebSocketClientsCore

    public init(name: String = "ws-clients", handler: @escaping @Sendable (WebSocketClientEvent) -> Void) throws {
        core = try WebSocketClientsCore(name: name, handler: handler)
    }

    deinit { core.stop() }

    /// Closes every connection and ends the thread.
    public func stop() { core.stop() }

    /// Opens `ws://host:port/path`; the id is valid at once, events follow.
    @discardableResult
    public func connect(host: String = "127.0.0.1", port: Int, path: String, origin: String? = nil, headers: [String: String] = [:]) -> WebSocketID {
        core.connect(host: host, port: port, path: path, origin: origin, headers: headers)
    }

    /// Sends one text message.
    public func send(_ text: [UInt8], to id: WebSocketID) { core.send(text, to: id) }

    /// Sends one text message.
    public func send(_ text: String, to id: WebSocketID) { core.send(Array(text.utf8), to: id) }

    /// Stops (or resumes) reading from the socket, as a slow client would; `applied` runs (on the
    /// service thread) once the socket's flow control is set.
    public func pauseReading(_ id: WebSocketID, _ paused: Bool = true, applied: (@Sendable () -> Void)? = nil) { core.pauseReading(id, paused, applied: applied) }

    /// Closes with a normal close (1000).
    public func close(_ id: WebSocketID) { core.close(id) }
}

/// The client connections behind a `WebSocketClients` handle; its thread holds it until the
/// context is destroyed.
///
/// `@unchecked Sendable`: the handle calls it from any thread, but those calls only take an id
/// (under `idLock`) and queue closures on the loop; the connection table is touched only by
/// those closures and the lws callbacks, all on the service thread.
final class WebSocketClientsCore: ServiceLoopOwner, @unchecked Sendable {
    private let loop: ServiceLoop
    private let handler: @Sendable (WebSocketClientEvent) -> Void
    private let table = ProtocolTable(name: "traffic-client", callback: webSocketClientCallback)
    private let idLock = NSLock()
    private var nextID: WebSocketID = 1
    // Service-thread state.
    private var clients: [WebSocketID: Client] = [:]

    public init(name: String = "ws-clients", handler: @escaping @Sendable (WebSocketClientEvent) -> Void) throws {
        lws_set_log_level(Int32(LLL_ERR), nil)
        self.handler = handler
        loop = ServiceLoop()
        guard let context = traffic_lws_create_client(table.protocols, Unmanaged.passUnretained(self).toOpaque(), loop.eventLoop) else {
            throw HTTPServerError(message: "cannot create a WebSocket client context")
        }
        loop.start(context: context, name: name, owner: self)
    }

    /// Closes every connection and ends the thread.
    func stop() { loop.stop() }

    func serviceEnded() {}

    /// Opens `ws://host:port/path`; the id is valid at once, events follow.
    @discardableResult
    public func connect(host: String = "127.0.0.1", port: Int, path: String, origin: String? = nil, headers: [String: String] = [:]) -> WebSocketID {
        let id = idLock.withLock { () -> WebSocketID in
            defer { nextID += 1 }
            return nextID
        }
        loop.execute { [self] in
            guard let context = loop.context else { return }
            // lws would prefix its own `http://` to info.origin; send the exact header instead.
            var headers = headers
            if let origin { headers["origin"] = origin }
            let client = Client(headers: headers)
            clients[id] = client
            let tag = UnsafeMutableRawPointer(bitPattern: UInt(id))
            let wsi = host.withCString { h in
                path.withCString { p in
                    traffic_lws_client_connect(context, h, Int32(port), p, nil, table.name, tag)
                }
            }
            if wsi == nil, clients[id] != nil {
                clients[id] = nil
                handler(.failed(id, reason: "connect failed"))
            }
        }
        return id
    }

    /// Sends one text message.
    public func send(_ text: [UInt8], to id: WebSocketID) {
        loop.execute { [self] in
            guard let client = clients[id] else { return }
            // lws writes the frame header and mask into the `LWS_PRE` bytes before the message.
            client.outbound.append([UInt8](repeating: 0, count: traffic_lws_pre()) + text)
            if let wsi = client.wsi { lws_callback_on_writable(wsi) }
        }
    }

    func pauseReading(_ id: WebSocketID, _ paused: Bool, applied: (@Sendable () -> Void)?) {
        loop.execute { [self] in
            if let client = clients[id] {
                client.paused = paused
                if let wsi = client.wsi { _ = lws_rx_flow_control(wsi, paused ? 0 : 1) }
            }
            applied?()
        }
    }

    /// Closes with a normal close (1000).
    public func close(_ id: WebSocketID) {
        loop.execute { [self] in
            guard let client = clients[id] else { return }
            client.closing = true
            if let wsi = client.wsi { lws_callback_on_writable(wsi) }
        }
    }

    fileprivate func callback(_ wsi: OpaquePointer, _ reason: lws_callback_reasons, _ user: UnsafeMutableRawPointer?, _ input: UnsafeMutableRawPointer?, _ length: Int) -> Int32 {
        if reason == LWS_CALLBACK_EVENT_WAIT_CANCELLED {
            loop.drain()
            return 0
        }
        let id = UInt64(UInt(bitPattern: lws_get_opaque_user_data(wsi)))
        switch reason {
        case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
            guard let client = clients[id], !client.headers.isEmpty, let input else { return 0 }
            let cursor = input.assumingMemoryBound(to: UnsafeMutablePointer<UInt8>?.self)
            guard let start = cursor.pointee else { return 0 }
            let end = start + length
            for (name, value) in client.headers where !appendHTTPHeader(wsi, name: name, value: value, cursor: cursor, end: end) {
                return -1
            }
            return 0
        case LWS_CALLBACK_CLIENT_ESTABLISHED:
            guard let client = clients[id] else { return -1 }
            client.wsi = wsi
            if client.paused { _ = lws_rx_flow_control(wsi, 0) }
            if !client.outbound.isEmpty || client.closing { lws_callback_on_writable(wsi) }
            handler(.opened(id))
            return 0
        case LWS_CALLBACK_CLIENT_RECEIVE:
            guard let client = clients[id] else { return 0 }
            if lws_is_first_fragment(wsi) != 0 { client.inbound.removeAll(keepingCapacity: true) }
            if let input, length > 0 { client.inbound.append(contentsOf: UnsafeRawBufferPointer(start: input, count: length)) }
            if lws_is_final_fragment(wsi) != 0, lws_remaining_packet_payload(wsi) == 0 {
                let message = client.inbound
                client.inbound.removeAll(keepingCapacity: true)
                handler(.message(id, message))
            }
            return 0
        case LWS_CALLBACK_CLIENT_WRITEABLE:
            guard let client = clients[id] else { return -1 }
            if client.closing {
                var bytes: [UInt8] = []
                lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, &bytes, 0)
                return -1
            }
            guard !client.outbound.isEmpty else { return 0 }
            var frame = client.outbound.removeFirst()
            let pre = traffic_lws_pre()
            let written = frame.withUnsafeMutableBufferPointer { lws_write(wsi, $0.baseAddress! + pre, $0.count - pre, LWS_WRITE_TEXT) }
            if written < 0 { return -1 }
            if !client.outbound.isEmpty { lws_callback_on_writable(wsi) }
            return 0
        case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
            guard let client = clients[id], let input, length >= 2 else { return 0 }
            let bytes = UnsafeRawBufferPointer(start: input, count: length)
            client.closeCode = UInt16(bytes[0]) << 8 | UInt16(bytes[1])
            client.closeReason = String(decoding: bytes.dropFirst(2), as: UTF8.self)
            return 0
        case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
            guard clients.removeValue(forKey: id) != nil else { return 0 }
            let reason = input.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) } ?? "connection error"
            handler(.failed(id, reason: reason))
            return 0
        case LWS_CALLBACK_CLIENT_CLOSED:
            guard let client = clients.removeValue(forKey: id) else { return 0 }
            handler(.closed(id, code: client.closeCode, reason: client.closeReason))
            return 0
        default:
            return lws_callback_http_dummy(wsi, reason, user, input, length)
        }
    }
}

private final class Client {
    var wsi: OpaquePointer?
    let headers: [String: String]
    /// Messages to send, each after `LWS_PRE` bytes of headroom.
    var outbound: [[UInt8]] = []
    var inbound: [UInt8] = []
    var paused = false
    var closing = false
    var closeCode: UInt16?
    var closeReason = ""
    init(headers: [String: String]) { self.headers = headers }
}


private let webSocketClientCallback: LWSCallback = { wsi, reason, user, input, length in
    guard let wsi, let context = lws_get_context(wsi), let raw = lws_context_user(context) else { return 0 }
    // The service thread holds the core until the context is destroyed: no reference needed.
    return Unmanaged<WebSocketClientsCore>.fromOpaque(raw)._withUnsafeGuaranteedRef { $0.callback(wsi, reason, user, input, length) }
}

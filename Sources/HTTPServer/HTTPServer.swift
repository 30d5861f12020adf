import CWebsockets
import Foundation
import Synchronization

/// A request the server hands to its handler.
public struct HTTPRequest: Sendable {
    /// The path without the query string, e.g. `/metrics`.
    public var path: String
}

/// What the handler answers.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]

    public init(status: Int = 200, contentType: String = "text/plain; charset=utf-8", body: [UInt8]) {
        self.status = status
        self.contentType = contentType
        self.body = body
    }

    public init(status: Int = 200, text: String) {
        self.init(status: status, body: Array(text.utf8))
    }

    /// A JSON body.
    public static func json(_ text: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: Array(text.utf8))
    }
}

/// A small HTTP server on libwebsockets, for health and metrics endpoints.
///
/// One lws context, served by one dedicated thread (`lws_service` never runs on Swift's
/// cooperative pool). The handler runs on that thread: it must be quick and must not block.
public final class HTTPServer: Sendable {
    private let shared: ServerShared
    public let port: Int

    /// Starts listening on `host:port` (host nil: all interfaces).
    public init(host: String? = "127.0.0.1", port: Int, handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse) throws {
        lws_set_log_level(Int32(LLL_ERR), nil)
        let shared = ServerShared(handler: handler)
        self.shared = shared
        self.port = port
        let name = strdup("http")!
        shared.protocols = .allocate(capacity: 2)
        shared.protocols[0] = lws_protocols(name: UnsafePointer(name), callback: httpCallback, per_session_data_size: 0, rx_buffer_size: 0, id: 0, user: nil, tx_packet_size: 0)
        shared.protocols[1] = lws_protocols()
        shared.protocolName = name
        let context: OpaquePointer? = host.map { h in h.withCString { traffic_lws_create_server($0, Int32(port), shared.protocols, Unmanaged.passUnretained(shared).toOpaque()) } }
            ?? traffic_lws_create_server(nil, Int32(port), shared.protocols, Unmanaged.passUnretained(shared).toOpaque())
        guard let context else {
            shared.release()
            throw HTTPServerError(message: "cannot listen on \(host ?? "*"):\(port) (port in use?)")
        }
        shared.context = context
        let thread = Thread { shared.serve() }
        thread.name = "http-\(port)"
        thread.start()
    }

    deinit {
        shared.stop()
    }

    /// Stops serving and waits for the service thread to finish.
    public func stop() {
        shared.stop()
    }
}

/// An HTTP server that could not start.
public struct HTTPServerError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { "HTTP server: \(message)" }
}

/// State of one server; the lws context and pending bodies are touched only on its thread.
final class ServerShared: @unchecked Sendable {
    let handler: @Sendable (HTTPRequest) -> HTTPResponse
    var protocols: UnsafeMutablePointer<lws_protocols>!
    var protocolName: UnsafeMutablePointer<CChar>?
    var context: OpaquePointer?
    /// Bodies waiting for their connection to become writable, by connection.
    var pending: [OpaquePointer: [UInt8]] = [:]
    private let running = Mutex(true)
    private let finished = DispatchSemaphore(value: 0)
    private let stopOnce = Mutex(false)

    init(handler: @escaping @Sendable (HTTPRequest) -> HTTPResponse) {
        self.handler = handler
    }

    func serve() {
        while running.withLock({ $0 }) {
            _ = lws_service(context, 0)
        }
        lws_context_destroy(context)
        context = nil
        release()
        finished.signal()
    }

    func stop() {
        let first = stopOnce.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first, context != nil else { return }
        running.withLock { $0 = false }
        lws_cancel_service(context)
        finished.wait()
    }

    func release() {
        protocols?.deallocate()
        protocols = nil
        free(protocolName)
        protocolName = nil
    }
}

private let httpCallback: @convention(c) (OpaquePointer?, lws_callback_reasons, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int) -> Int32 = { wsi, reason, user, input, length in
    guard let wsi, let context = lws_get_context(wsi), let raw = lws_context_user(context) else { return 0 }
    let shared = Unmanaged<ServerShared>.fromOpaque(raw).takeUnretainedValue()
    switch reason {
    case LWS_CALLBACK_HTTP:
        let path = input.map { String(cString: $0.assumingMemoryBound(to: CChar.self)) } ?? "/"
        let response = shared.handler(HTTPRequest(path: path))
        let pre = traffic_lws_pre()
        var header = [UInt8](repeating: 0, count: pre + 1024)
        let ok = header.withUnsafeMutableBufferPointer { buffer -> Bool in
            let start = buffer.baseAddress! + pre
            var cursor: UnsafeMutablePointer<UInt8>? = start
            let end = buffer.baseAddress! + buffer.count - 1
            if lws_add_http_common_headers(wsi, UInt32(response.status), response.contentType, lws_filepos_t(response.body.count), &cursor, end) != 0 { return false }
            return lws_finalize_write_http_header(wsi, start, &cursor, end) == 0
        }
        if !ok { return 1 }
        shared.pending[wsi] = response.body
        lws_callback_on_writable(wsi)
        return 0
    case LWS_CALLBACK_HTTP_WRITEABLE:
        guard let body = shared.pending.removeValue(forKey: wsi) else { return 0 }
        let pre = traffic_lws_pre()
        var frame = [UInt8](repeating: 0, count: pre + body.count)
        frame.replaceSubrange(pre..<(pre + body.count), with: body)
        let written = frame.withUnsafeMutableBufferPointer { buffer in
            lws_write(wsi, buffer.baseAddress! + pre, body.count, LWS_WRITE_HTTP_FINAL)
        }
        if written < body.count { return -1 }
        return lws_http_transaction_completed(wsi) != 0 ? -1 : 0
    case LWS_CALLBACK_CLOSED_HTTP:
        shared.pending.removeValue(forKey: wsi)
        return 0
    default:
        return lws_callback_http_dummy(wsi, reason, user, input, length)
    }
}

import CWebsockets

/// Reads what lws parsed of a request into an `HTTPRequest`, and refuses what the server
/// answers by itself (over the URI or header budget, a method other than GET and HEAD).
extension WebServerCore {
    /// Requests answered by the server itself: over the URI or header budget (414, 431), or a
    /// method other than GET and HEAD (405).
    func refusal(of request: HTTPRequest, _ wsi: OpaquePointer) -> HTTPResponse? {
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

    func header(_ wsi: OpaquePointer, _ token: lws_token_indexes) -> String? {
        let length = Int(lws_hdr_total_length(wsi, token))
        guard length > 0, length <= configuration.headerBufferBytes else { return nil }
        var buffer = [CChar](repeating: 0, count: length + 1)
        guard lws_hdr_copy(wsi, &buffer, Int32(buffer.count), token) >= 0 else { return nil }
        return string(fromCBuffer: buffer)
    }

    func readRequest(_ wsi: OpaquePointer, path: String) -> HTTPRequest {
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

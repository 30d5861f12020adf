import CWebsockets

/// Writes an HTTP response through lws: its header block (with a reason phrase lws leaves out
/// for some codes) and its body.
extension WebServerCore {
    func write(_ response: HTTPResponse, on wsi: OpaquePointer, method: String) -> Int32 {
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

}

import CWebsockets

/// Appends `name: value` to an HTTP header block lws is building (server responses and client
/// handshakes alike); false when it does not fit before `end`.
func appendHTTPHeader(_ wsi: OpaquePointer, name: String, value: String, cursor: UnsafeMutablePointer<UnsafeMutablePointer<UInt8>?>, end: UnsafeMutablePointer<UInt8>) -> Bool {
    "\(name.lowercased()):".withCString { n in
        value.withCString { v in
            lws_add_http_header_by_name(wsi, UnsafeRawPointer(n).assumingMemoryBound(to: UInt8.self), UnsafeRawPointer(v).assumingMemoryBound(to: UInt8.self), Int32(strlen(v)), cursor, end) == 0
        }
    }
}

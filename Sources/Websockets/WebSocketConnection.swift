/// One WebSocket connection's state; service thread only.
final class WebSocketConnection {
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

import CWebsockets
import Foundation

/// An encoded WebSocket text message with the `LWS_PRE` headroom lws writes its frame header
/// into.
///
/// One frame is built once and queued to any number of connections (fan-out shares the bytes).
/// All writes happen on the one service thread, one at a time, so sharing the headroom is safe.
public final class OutboundFrame: @unchecked Sendable {
    let storage: UnsafeMutableRawPointer
    /// Payload length in bytes (without the headroom).
    public let count: Int

    /// Copies `bytes` into a new frame.
    public init<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        let pre = traffic_lws_pre()
        count = bytes.count
        storage = .allocate(byteCount: pre + max(count, 1), alignment: 16)
        let payload = UnsafeMutableRawBufferPointer(start: storage + pre, count: count)
        payload.copyBytes(from: bytes)
    }

    /// A frame holding the UTF-8 of `text`.
    public convenience init(text: String) {
        self.init(Array(text.utf8))
    }

    deinit { storage.deallocate() }

    var payload: UnsafeMutablePointer<UInt8> {
        (storage + traffic_lws_pre()).assumingMemoryBound(to: UInt8.self)
    }
}

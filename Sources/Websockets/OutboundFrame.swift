import Foundation
import Synchronization

/// A WebSocket text message encoded once as it goes on the wire — the unmasked frame header a
/// server sends, then the payload — and shared, reference-counted, by every connection that
/// sends it: fan-out copies no bytes per client. Freed when the last connection has written it.
///
/// `@unchecked Sendable`: the bytes are written once, in `init`, and only read afterwards.
public final class OutboundFrame: @unchecked Sendable {
    private let storage: UnsafeMutableRawPointer
    private let headerCount: Int
    /// Payload length in bytes (the message, without the frame header).
    public let count: Int

    private static let live = Atomic<Int>(0)
    /// Frames in memory in this process: each is freed when the last connection has written it.
    public static var liveCount: Int { live.load(ordering: .relaxed) }

    /// A frame of `count` payload bytes that `fill` writes in place (one allocation, no copy of
    /// an intermediate buffer).
    public init(count: Int, fill: (UnsafeMutableRawBufferPointer) -> Void) {
        self.count = count
        var header: [UInt8] = [0x81] // FIN, text
        switch count {
        case ..<126:
            header.append(UInt8(count))
        case ..<65_536:
            header += [126, UInt8(count >> 8), UInt8(count & 0xFF)]
        default:
            header.append(127)
            for shift in stride(from: 56, through: 0, by: -8) { header.append(UInt8((UInt64(count) >> UInt64(shift)) & 0xFF)) }
        }
        headerCount = header.count
        storage = .allocate(byteCount: header.count + max(count, 1), alignment: 16)
        storage.copyMemory(from: header, byteCount: header.count)
        fill(UnsafeMutableRawBufferPointer(start: storage + header.count, count: count))
        Self.live.add(1, ordering: .relaxed)
    }

    /// Copies `bytes` into a new frame.
    public convenience init<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        self.init(count: bytes.count) { $0.copyBytes(from: bytes) }
    }

    /// A frame holding the UTF-8 of `text`.
    public convenience init(text: String) {
        self.init(Array(text.utf8))
    }

    deinit {
        storage.deallocate()
        Self.live.subtract(1, ordering: .relaxed)
    }

    /// Header and payload, as written to the socket.
    var wire: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: storage, count: headerCount + count) }

    /// Lends the payload (the frame stays alive meanwhile).
    public func withPayload<R, E: Error>(_ body: (UnsafeRawBufferPointer) throws(E) -> R) throws(E) -> R {
        try withExtendedLifetime(self) { () throws(E) -> R in try body(UnsafeRawBufferPointer(start: storage + headerCount, count: count)) }
    }
}

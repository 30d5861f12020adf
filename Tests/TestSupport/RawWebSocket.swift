import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A WebSocket client on a bare blocking socket, for tests that must put exact bytes on the
/// wire (unmasked frames, floods) which a conforming client library refuses to send. Not
/// `Sendable`: one task owns it (its read buffer is plain state).
public final class RawWebSocket {
    private let fd: Int32
    private var buffer: [UInt8] = []

    /// Connects to 127.0.0.1:`port`, sends the upgrade for `path` (with `early` bytes in the same
    /// write, as a client that does not wait for the 101 would) and waits for `101`.
    public init(port: Int, path: String = "/ws", early: [UInt8] = [], timeoutSeconds: Int = 5) throws {
        guard let fd = connectLoopback(port: port, receiveTimeoutSeconds: timeoutSeconds) else { throw LocalServiceError("connect to \(port) failed") }
        self.fd = fd
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try write(Array(request.utf8) + early)
        while true {
            if let end = Self.headerEnd(buffer) {
                let head = String(decoding: buffer[0..<end], as: UTF8.self)
                buffer.removeFirst(end + 4)
                guard head.hasPrefix("HTTP/1.1 101") else { throw LocalServiceError("upgrade refused: \(head)") }
                return
            }
            try fill()
        }
    }

    deinit { close(fd) }

    /// Sends raw bytes.
    public func write(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw LocalServiceError("send failed") }
            sent += n
        }
    }

    /// A text frame, masked (as clients must) or not.
    public static func textFrame(_ text: String, masked: Bool) -> [UInt8] {
        frame(opcode: 0x1, Array(text.utf8), masked: masked)
    }

    /// A final frame with `opcode` (0x1 text, 0x9 ping, 0x8 close…).
    public static func frame(opcode: UInt8, _ payload: [UInt8], masked: Bool) -> [UInt8] {
        var frame: [UInt8] = [0x80 | opcode]
        let maskBit: UInt8 = masked ? 0x80 : 0
        if payload.count < 126 {
            frame.append(maskBit | UInt8(payload.count))
        } else {
            frame.append(maskBit | 126)
            frame += [UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        guard masked else { return frame + payload }
        let key: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]
        return frame + key + payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
    }

    /// The next frame from the server: (opcode, payload); nil when the connection ended.
    public func readFrame() throws -> (opcode: UInt8, payload: [UInt8])? {
        while true {
            if buffer.count >= 2 {
                var length = Int(buffer[1] & 0x7F)
                var offset = 2
                if length == 126, buffer.count >= 4 { length = Int(buffer[2]) << 8 | Int(buffer[3]); offset = 4 }
                if length == 127, buffer.count >= 10 { length = buffer[2..<10].reduce(0) { $0 << 8 | Int($1) }; offset = 10 }
                if (buffer[1] & 0x7F) < 126 || buffer.count >= offset, buffer.count >= offset + length {
                    let frame = (buffer[0] & 0x0F, Array(buffer[offset..<(offset + length)]))
                    buffer.removeFirst(offset + length)
                    return frame
                }
            }
            do { try fill() } catch { return nil }
        }
    }

    /// The close code the server sent, reading past other frames; nil when none came.
    public func closeCode() throws -> UInt16? {
        while let frame = try readFrame() {
            if frame.opcode == 0x8 { return frame.payload.count >= 2 ? UInt16(frame.payload[0]) << 8 | UInt16(frame.payload[1]) : 1005 }
        }
        return nil
    }

    private func fill() throws {
        var chunk = [UInt8](repeating: 0, count: 65_536)
        let n = Glibc.recv(fd, &chunk, chunk.count, 0)
        guard n > 0 else { throw LocalServiceError("connection ended") }
        buffer += chunk[0..<n]
    }

    private static func headerEnd(_ data: [UInt8]) -> Int? {
        guard data.count >= 4 else { return nil }
        for i in 0...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 { return i }
        return nil
    }
}

import CLinux
import Foundation
import LocalServices
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// WebSocket clients for load generation on raw non-blocking sockets and epoll: no WebSocket
/// library, frames found by their headers only, payloads scanned with `memmem`, every client
/// frame masked with one precomputed mask. Light enough that the clients cost less CPU than
/// the gateway they measure.
///
/// Connections are opened and upgraded blocking, at setup; then each of `threads` threads owns
/// its share of them on its own epoll descriptor (their state never leaves that thread).
final class RawWebSocketLoad: Sendable {
    /// What a client saw: a result (its request id's sequence number, when it has one), a
    /// snapshot, or a message of another type.
    enum Event {
        case result(sequence: Int?)
        case snapshot
        case other
    }

    /// Called on a client thread for every result or snapshot (batched results one by one).
    typealias Handler = @Sendable (Event, _ receivedNanoseconds: UInt64) -> Void

    private let stopFlag = Atomic<Bool>(false)
    private let finished: [DispatchSemaphore]
    private let cpu = Mutex<Double>(0)

    /// Opens `subscriptions.count` clients to `127.0.0.1:port` (`path`), sends each its
    /// subscribe message, and starts reading on `threads` threads.
    init(port: Int, path: String = "/ws", subscriptions: [String], threads: Int, handler: @escaping Handler) throws {
        var descriptors: [(Int32, [UInt8])] = []
        for message in subscriptions {
            let (fd, leftover) = try Self.open(port: port, path: path)
            try Self.writeAll(fd, Self.maskedText(Array(message.utf8)))
            descriptors.append((fd, leftover))
        }
        let count = max(1, threads)
        finished = (0..<count).map { _ in DispatchSemaphore(value: 0) }
        for index in 0..<count {
            let share = stride(from: index, to: descriptors.count, by: count).map { descriptors[$0] }
            let done = finished[index]
            let thread = Thread { [self] in
                let used = ReaderThread(connections: share, handler: handler).run(until: stopFlag)
                cpu.withLock { $0 += used }
                done.signal()
            }
            thread.name = "raw-ws-\(index)"
            thread.start()
        }
    }

    /// Stops the threads, closes every connection; returns the CPU seconds the reading threads used.
    func stop() -> Double {
        stopFlag.store(true, ordering: .relaxed)
        for done in finished { done.wait() }
        return cpu.withLock { $0 }
    }

    /// Opens idle connections (upgraded, nothing subscribed); returns their descriptors.
    static func openIdle(port: Int, count: Int) -> [Int32] {
        var fds: [Int32] = []
        for _ in 0..<count {
            guard let (fd, _) = try? open(port: port, path: "/ws") else { continue }
            fds.append(fd)
        }
        return fds
    }

    // MARK: Wire

    static let mask: [UInt8] = [0x37, 0xFA, 0x21, 0x3D]

    /// A masked client text frame.
    static func maskedText(_ payload: [UInt8]) -> [UInt8] { maskedFrame(opcode: 0x1, payload) }

    static func maskedFrame(opcode: UInt8, _ payload: [UInt8]) -> [UInt8] {
        var frame: [UInt8] = [0x80 | opcode]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xFF)]
        }
        frame += mask
        for (i, byte) in payload.enumerated() { frame.append(byte ^ mask[i & 3]) }
        return frame
    }

    /// Connects, upgrades, and returns the socket (blocking) and any bytes read past the 101.
    static func open(port: Int, path: String) throws -> (Int32, [UInt8]) {
        guard let fd = connectLoopback(port: port, receiveTimeoutSeconds: 10) else { throw BenchError("connect to \(port) failed") }
        let request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try writeAll(fd, Array(request.utf8))
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { close(fd); throw BenchError("upgrade: connection closed") }
            received += buffer[..<n]
            if let end = received.indices.dropLast(3).first(where: { received[$0] == 13 && received[$0 + 1] == 10 && received[$0 + 2] == 13 && received[$0 + 3] == 10 }) {
                guard received.starts(with: Array("HTTP/1.1 101".utf8)) else { close(fd); throw BenchError("upgrade refused: \(String(decoding: received[..<end], as: UTF8.self))") }
                return (fd, Array(received[(end + 4)...]))
            }
        }
    }

    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EAGAIN || errno == EINTR { continue }
            guard n > 0 else { throw BenchError("send failed: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }
}

/// A benchmark setup that failed.
struct BenchError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// One reading thread: its connections and their frame parsers. Made on the thread, never shared.
private final class ReaderThread {
    /// One connection's parser: the frame header being read, then the payload (kept only for
    /// text and ping frames: results are scanned when complete).
    struct Connection {
        let fd: Int32
        var header: [UInt8] = []
        var remaining = 0
        var opcode: UInt8 = 0
        var message: [UInt8] = []
        var open = true
    }

    private var connections: [Connection]
    private let handler: RawWebSocketLoad.Handler
    private static let resultHead = Array(#"{"type":"result""#.utf8)
    private static let resultsHead = Array(#"{"type":"results""#.utf8)
    private static let snapshotHead = Array(#"{"type":"snapshot""#.utf8)
    private static let requestIdKey = Array(#""requestId":""#.utf8)

    init(connections: [(Int32, [UInt8])], handler: @escaping RawWebSocketLoad.Handler) {
        self.connections = connections.map { Connection(fd: $0.0) }
        self.handler = handler
        for (index, (_, leftover)) in connections.enumerated() where !leftover.isEmpty {
            leftover.withUnsafeBytes { consume(index, $0, now: DispatchTime.now().uptimeNanoseconds) }
        }
    }

    /// Reads until `stop`; closes the connections; returns this thread's CPU seconds.
    func run(until stop: borrowing Atomic<Bool>) -> Double {
        let epoll = epoll_create1(0)
        defer { close(epoll) }
        for (index, c) in connections.enumerated() {
            _ = fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK)
            var event = epoll_event()
            event.events = EPOLLIN.rawValue
            event.data.u64 = UInt64(index)
            epoll_ctl(epoll, EPOLL_CTL_ADD, c.fd, &event)
        }
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256 * 1024, alignment: 16)
        defer { buffer.deallocate() }
        while !stop.load(ordering: .relaxed) {
            let ready = epoll_wait(epoll, &events, Int32(events.count), 50)
            guard ready > 0 else { continue }
            for event in events.prefix(Int(ready)) {
                let index = Int(event.data.u64)
                while connections[index].open {
                    let n = read(connections[index].fd, buffer.baseAddress, buffer.count)
                    if n > 0 {
                        consume(index, UnsafeRawBufferPointer(rebasing: buffer[..<n]), now: DispatchTime.now().uptimeNanoseconds)
                        if n < buffer.count { break }
                    } else {
                        if n == 0 || (errno != EAGAIN && errno != EINTR) {
                            connections[index].open = false
                            epoll_ctl(epoll, EPOLL_CTL_DEL, connections[index].fd, nil)
                        }
                        break
                    }
                }
            }
        }
        for c in connections { close(c.fd) }
        var used = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used)
        return Double(used.tv_sec) + Double(used.tv_nsec) / 1e9
    }

    /// Feeds received bytes through connection `index`'s frame parser.
    private func consume(_ index: Int, _ bytes: UnsafeRawBufferPointer, now: UInt64) {
        var at = 0
        while at < bytes.count {
            if needsHeader(index) {
                connections[index].header.append(bytes[at])
                at += 1
                if let (opcode, length) = Self.parseHeader(connections[index].header) {
                    connections[index].header.removeAll(keepingCapacity: true)
                    connections[index].opcode = opcode
                    connections[index].remaining = length
                    connections[index].message.removeAll(keepingCapacity: true)
                    if length == 0 { complete(index, now: now) }
                }
                continue
            }
            let take = min(connections[index].remaining, bytes.count - at)
            connections[index].message.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[at..<(at + take)]))
            connections[index].remaining -= take
            at += take
            if connections[index].remaining == 0 { complete(index, now: now) }
        }
    }

    /// Between frames (or inside a header).
    private func needsHeader(_ index: Int) -> Bool {
        connections[index].remaining == 0
    }

    /// Opcode and payload length once `header` holds a whole (unmasked, server) frame header.
    private static func parseHeader(_ header: [UInt8]) -> (UInt8, Int)? {
        guard header.count >= 2 else { return nil }
        let short = Int(header[1] & 0x7F)
        switch short {
        case 126:
            guard header.count >= 4 else { return nil }
            return (header[0] & 0x0F, Int(header[2]) << 8 | Int(header[3]))
        case 127:
            guard header.count >= 10 else { return nil }
            return (header[0] & 0x0F, header[2..<10].reduce(0) { $0 << 8 | Int($1) })
        default:
            return (header[0] & 0x0F, short)
        }
    }

    private func complete(_ index: Int, now: UInt64) {
        let message = connections[index].message
        switch connections[index].opcode {
        case 0x1, 0x0:
            if message.starts(with: Self.resultsHead) {
                var position = 0
                while let found = Self.find(Self.requestIdKey, in: message, from: position) {
                    handler(.result(sequence: Self.sequence(message, after: found + Self.requestIdKey.count)), now)
                    position = found + Self.requestIdKey.count
                }
            } else if message.starts(with: Self.resultHead) {
                let found = Self.find(Self.requestIdKey, in: message, from: 0)
                handler(.result(sequence: found.flatMap { Self.sequence(message, after: $0 + Self.requestIdKey.count) }), now)
            } else if message.starts(with: Self.snapshotHead) {
                handler(.snapshot, now)
            } else {
                handler(.other, now)
            }
        case 0x9:
            // A ping: answered with a pong carrying its payload.
            try? RawWebSocketLoad.writeAll(connections[index].fd, RawWebSocketLoad.maskedFrame(opcode: 0xA, message))
        case 0x8:
            connections[index].open = false
        default:
            break
        }
    }

    /// `memmem`: where `needle` starts in `haystack` at or after `from`.
    private static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard from < haystack.count else { return nil }
        return haystack.withUnsafeBytes { h in
            needle.withUnsafeBytes { n in
                guard let hit = traffic_memmem(h.baseAddress! + from, h.count - from, n.baseAddress!, n.count) else { return nil }
                return h.baseAddress!.distance(to: UnsafeRawPointer(hit))
            }
        }
    }

    /// The sequence number ending a request id (`<tag>_<ms>_<sequence>"`) that starts at `start`.
    private static func sequence(_ message: [UInt8], after start: Int) -> Int? {
        var end = start
        while end < message.count, message[end] != UInt8(ascii: "\"") { end += 1 }
        var digitsStart = end
        while digitsStart > start, message[digitsStart - 1] >= 48, message[digitsStart - 1] <= 57 { digitsStart -= 1 }
        guard digitsStart < end else { return nil }
        return message[digitsStart..<end].reduce(0) { $0 * 10 + Int($1 - 48) }
    }
}

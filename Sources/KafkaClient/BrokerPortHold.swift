import Foundation
import Synchronization

/// One idle TCP connection to each embedded broker, so that an outgoing connection cannot take
/// a broker's port while it is taken down (which would abort the process).
///
/// librdkafka 2.0.2 takes a mock broker down by closing its listening socket and at once binding
/// a new one to the same port (kept for `setBrokerUp`). If nothing else holds the port in that
/// gap, any socket on the machine may take it (an outgoing connection's ephemeral port, another
/// listener), the new bind fails with EADDRINUSE and the mock asserts, aborting the whole
/// process ("Failed to-create mock broker listener"); a loaded machine can stall the mock's
/// thread inside the gap. A connection the broker accepted keeps the port's bind bucket alive
/// through the gap (the broker closes its connections only after the new bind), and Linux hands
/// neither outgoing connections nor other listeners a port that is still bound. The broker closes
/// the held connection when it goes down, so it is made again after each `setBrokerUp`. (The
/// other way to lose the port in that gap, a child process being started that still holds a copy
/// of the listener, is closed by `SpawnGate`.)
final class BrokerPortHold: Sendable {
    /// Broker id → the held socket.
    private let sockets = Mutex<[Int32: Int32]>([:])

    /// Connects to `port` on loopback for broker `id`, replacing (closing) an earlier
    /// connection. Blocking, but only for a loopback connect and one small exchange. False when
    /// it failed: the broker's port is then not held.
    @discardableResult
    func hold(broker id: Int32, port: Int) -> Bool {
        if let previous = sockets.withLock({ $0.removeValue(forKey: id) }) { close(previous) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        // The broker must have accepted the connection: one still in its listen queue dies with
        // the listening socket. An answered ApiVersions request (v0) proves it was accepted.
        guard connected == 0, Self.exchangeApiVersions(fd) else {
            close(fd)
            return false
        }
        sockets.withLock { $0[id] = fd }
        return true
    }

    /// The brokers whose port is held now (for tests).
    var heldBrokers: [Int32] { sockets.withLock { $0.keys.sorted() } }

    /// Sends ApiVersions v0 and reads the whole answer (5 s at most).
    private static func exchangeApiVersions(_ fd: Int32) -> Bool {
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        _ = setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let clientID = Array("port-hold".utf8)
        var body: [UInt8] = [0, 18, 0, 0, 0, 0, 0, 1] // api key 18 (ApiVersions), version 0, correlation id 1
        body += [UInt8(clientID.count >> 8), UInt8(clientID.count & 0xFF)] + clientID
        let size = UInt32(body.count)
        let request = [UInt8(size >> 24), UInt8((size >> 16) & 0xFF), UInt8((size >> 8) & 0xFF), UInt8(size & 0xFF)] + body
        guard request.withUnsafeBytes({ send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }) == request.count else { return false }
        func read(_ count: Int) -> [UInt8]? {
            var bytes = [UInt8](repeating: 0, count: count), got = 0
            while got < count {
                let n = bytes.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + got, count - got, 0) }
                if n < 0, errno == EINTR { continue }
                guard n > 0 else { return nil }
                got += n
            }
            return bytes
        }
        guard let header = read(4) else { return false }
        let length = header.reduce(0) { $0 << 8 | Int($1) }
        guard length >= 4, length < 1 << 20, let answer = read(length) else { return false }
        return answer.prefix(4) == [0, 0, 0, 1] // our correlation id
    }

    deinit {
        for fd in sockets.withLock({ $0.values }) { close(fd) }
    }

    /// The ports of `host:port,…` in order (broker ids 1, 2, … in the mock's order).
    static func ports(_ bootstrapServers: String) -> [Int] {
        bootstrapServers.split(separator: ",").compactMap { $0.split(separator: ":").last.flatMap { Int($0) } }
    }
}

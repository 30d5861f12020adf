import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A TCP listener on loopback that accepts connections and never answers: a peer that hangs
/// mid-handshake, for tests of what a client does while it waits.
public final class SilentServer: Sendable {
    public let port: Int
    private let listener: Int32
    private let connections = Accepted()
    private let stopped = Mutex(false)

    /// The accepted descriptors, shared with the accepting thread.
    private final class Accepted: Sendable {
        let fds = Mutex<[Int32]>([])
    }

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw LocalServiceError("socket() failed") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 16) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else {
            close(fd)
            throw LocalServiceError("cannot listen on loopback")
        }
        listener = fd
        port = Int(UInt16(bigEndian: address.sin_port))
        let accepted = connections
        let thread = Thread {
            while true {
                let connection = accept(fd, nil, nil)
                if connection < 0 { return } // the listener was shut down
                accepted.fds.withLock { $0.append(connection) }
            }
        }
        thread.start()
    }

    /// Connections accepted so far.
    public var accepted: Int { connections.fds.withLock { $0.count } }

    /// Stops accepting and closes every connection.
    public func stop() {
        guard stopped.withLock({ done in defer { done = true }; return !done }) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        connections.fds.withLock { fds in
            for fd in fds { close(fd) }
            fds.removeAll()
        }
    }

    deinit { stop() }
}

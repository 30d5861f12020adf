import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Finds a free TCP port on loopback, never the same one twice in a test process: a server
/// stopped and restarted on its port (fault tests) must not find another test's server there,
/// nor lend its port to one in between.
///
/// The port is drawn from below the kernel's ephemeral range (`ip_local_port_range`), where
/// neither outgoing connections nor `bind(0)` (the embedded Kafka brokers, every client) ever
/// land: a port handed out here cannot be taken by one of those before its server binds it, and
/// its server cannot take an embedded broker's port while librdkafka rebinds it (a broker taken
/// down closes its listener and binds the port again at once; losing it aborts the process).
/// Falls back to `bind(0)` when the range leaves no room below it.
public enum FreePort {
    private static let handedOut = Mutex<Set<Int>>([])

    public static func find() throws -> Int {
        let candidates = belowEphemeralRange()
        for _ in 0..<200 {
            let port: Int
            if let candidates {
                let pick = Int.random(in: candidates)
                guard bindable(pick) else { continue } // something of this machine's is there
                port = pick
            } else {
                port = try any()
            }
            if handedOut.withLock({ $0.insert(port).inserted }) { return port }
        }
        throw LocalServiceError("no loopback port that was not handed out before")
    }

    /// Ports below the ephemeral range: up to 10,000 of them, ending 2,768 below its first port
    /// (with Linux's default range 32768–60999: 20000–29999, clear of the 30000–32767 that
    /// Kubernetes gives NodePorts). Nil when fewer than 1,000 such ports lie above 1024.
    static func belowEphemeralRange() -> Range<Int>? {
        let text = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)) ?? "" // try?: no such file (not Linux): the range is unknown, bind(0) serves
        guard let low = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" }).first.flatMap({ Int($0) }) else { return nil }
        let upper = low - 2_768, lower = max(1025, upper - 10_000)
        guard upper - lower >= 1_000 else { return nil }
        return lower..<upper
    }

    /// Whether `port` can be bound on loopback now (without SO_REUSEADDR: nothing else is there).
    private static func bindable(_ port: Int) -> Bool {
        bindLoopback(port) != nil
    }

    /// A port the kernel picks (`bind(0)`, from its ephemeral range).
    private static func any() throws -> Int {
        guard let port = bindLoopback(0) else { throw LocalServiceError("bind() to a loopback port failed") }
        return port
    }

    /// Binds a socket to 127.0.0.1:`port` (0: the kernel picks) and closes it again; the port it
    /// was bound to, or nil when the bind failed.
    private static func bindLoopback(_ port: Int) -> Int? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var address = loopbackAddress(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { return nil }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

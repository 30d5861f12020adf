public import Foundation
public import RedisClient
import OwnThread
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A real `redis-server` on a free loopback port, in its own temporary directory.
///
/// No persistence unless asked. `stop()` ends it by pid; `kill()` SIGKILLs it (a crash);
/// `start()` brings it back on the same port for fault tests.
public final class RedisServer: Sendable {
    public let directory: URL
    public let extraArguments: [String]
    private struct State {
        var port: Int
        var process: ChildProcess?
        /// The process last stopped or killed, until it is gone (a restart waits for it).
        var previous: ChildProcess?
    }
    private let state: Mutex<State>

    /// The port it listens on (fixed once the first start succeeded).
    public var port: Int { state.withLock { $0.port } }

    /// Starts a server and waits until it answers PING.
    public init(extraArguments: [String] = [], port: Int? = nil) async throws {
        state = Mutex(State(port: try port ?? FreePort.find()))
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("redis-test-\(UUID().uuidString)")
        self.extraArguments = extraArguments
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        // A free port can still be taken by another process before redis-server binds it
        // (another test run, some service of the machine): then try another one.
        for attempt in 1...5 {
            do {
                try await start()
                return
            } catch where port == nil && attempt < 5 {
                let next = try FreePort.find()
                state.withLock { $0.port = next }
            }
        }
    }

    deinit {
        stopNow(signal: SIGKILL)
        try? FileManager.default.removeItem(at: directory) // try?: a temporary directory left behind is harmless, and deinit cannot report
    }

    /// The URL clients use.
    public var url: String { "redis://127.0.0.1:\(port)" }

    /// A client configuration for `url`, with the tests' quick timeouts and reconnects.
    public var configuration: RedisConfiguration { Self.quick(RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port))) }

    /// `configuration` for a local test server: short timeouts, quick reconnects.
    public static func quick(_ configuration: RedisConfiguration) -> RedisConfiguration {
        var config = configuration
        config.connectTimeout = .seconds(1)
        config.commandTimeout = .seconds(5)
        config.reconnect = .init(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(300))
        return config
    }

    public var pid: Int32? { state.withLock { $0.process?.pid } }

    /// Starts (or restarts) the server on its port and waits until it answers.
    public func start() async throws {
        if let previous = state.withLock({ $0.previous }) {
            _ = try await previous.wait(timeout: .seconds(15)) // the port is free again
        }
        let executable = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let executable else { throw LocalServiceError("redis-server is not installed (apt-get install redis-server)") }
        let port = self.port
        let process = try ChildProcess(executable, [
            "--port", String(port), "--bind", "127.0.0.1", "--dir", directory.path,
            "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no",
            "--logfile", directory.appendingPathComponent("redis.log").path,
        ] + extraArguments)
        state.withLock { $0.process = process }
        let log = directory.appendingPathComponent("redis.log").path
        try await waitUntil("redis-server on port \(port) answers", timeout: .seconds(10)) {
            if !process.isRunning {
                let tail = (try? String(contentsOfFile: log, encoding: .utf8))?.split(separator: "\n").suffix(3).joined(separator: " | ") ?? "" // try?: without its log the error still says that it exited
                throw LocalServiceError("redis-server on port \(port) exited at start: \(tail)")
            }
            // The server that answers must be this one, not another test's on a reused port.
            // (A server that wants a password does not say; then its process must still run.)
            switch await onOwnThread({ Self.identify(port: port) }) {
            case nil:
                return false
            case .refused?:
                return process.isRunning
            case .process(let answering)?:
                guard answering == process.pid else {
                    throw LocalServiceError("port \(port) is served by another redis-server (pid \(answering)), not the one started (pid \(process.pid))")
                }
                return true
            }
        }
    }

    /// Who answers on a port.
    public enum Answer: Sendable, Equatable {
        /// A Redis that refused to say (an error reply, e.g. NOAUTH): up, identity unknown.
        case refused
        /// The redis-server with this `process_id`.
        case process(Int32)
    }

    /// Asks the server on `port` who it is (INFO server) over a raw connection; nil when nothing
    /// answers as Redis does.
    public static func identify(port: Int) -> Answer? {
        guard let fd = connectLoopback(port: port, receiveTimeoutSeconds: 1) else { return nil }
        defer { close(fd) }
        let request = Array("INFO server\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { return nil }
        var reply: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while reply.first != UInt8(ascii: "-") && (!String(decoding: reply, as: UTF8.self).contains("process_id:") || !reply.suffix(2).elementsEqual([13, 10])) {
            let n = read(fd, &buffer, buffer.count)
            guard n > 0 else { break }
            reply += buffer[..<n]
        }
        if reply.first == UInt8(ascii: "-") { return .refused }
        let text = String(decoding: reply, as: UTF8.self)
        guard let line = text.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("process_id:") }),
              let pid = Int32(line.dropFirst("process_id:".count).trimmingCharacters(in: .whitespaces)) else { return nil }
        return .process(pid)
    }

    /// Ends the server with SIGTERM (SIGKILL after 5 s). Returns at once; `start()` waits for
    /// the old process to be gone.
    public func stop() { stopNow(signal: SIGTERM) }

    /// SIGKILLs the server (no shutdown work), as a crash would. Returns at once.
    public func kill() { stopNow(signal: SIGKILL) }

    private func stopNow(signal: Int32) {
        let current: ChildProcess? = state.withLock { state in
            defer { state.previous = state.process ?? state.previous; state.process = nil }
            return state.process
        }
        guard let current else { return }
        if signal == SIGKILL { current.signal(SIGKILL) }
        current.terminate()
    }

    /// A raw TCP PING, independent of the client under test.
    public static func ping(port: Int) -> Bool {
        guard let fd = connectLoopback(port: port, receiveTimeoutSeconds: 1) else { return false }
        defer { close(fd) }
        let request = Array("PING\r\n".utf8)
        guard write(fd, request, request.count) == request.count else { return false }
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = read(fd, &buffer, buffer.count)
        // "+PONG" or "-NOAUTH …" both prove the server is up.
        return n > 0 && (buffer[0] == UInt8(ascii: "+") || buffer[0] == UInt8(ascii: "-"))
    }
}

/// A TCP socket connected to 127.0.0.1:`port` with a receive timeout, or nil.
public func connectLoopback(port: Int, receiveTimeoutSeconds: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    var timeout = timeval(tv_sec: receiveTimeoutSeconds, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard connected == 0 else {
        close(fd)
        return nil
    }
    return fd
}

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
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
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

/// A failure of the test harness itself.
public struct LocalServiceError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

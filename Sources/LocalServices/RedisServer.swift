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

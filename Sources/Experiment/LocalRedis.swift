import Foundation
import Logging
import RedisClient

/// A `redis-server` this tool may start for a run and shut down afterwards — and only if it
/// started it.
///
/// Ownership is recorded twice: a file in the system's temporary directory named by the port
/// (`traffic-experiment-redis-<port>.json`: the server's pid and a random token), and the same
/// token under the key `traffic-experiment:owner` in that server. `shutdownIfOwned` sends
/// SHUTDOWN only when both agree and the server's own `process_id` is the recorded pid; a Redis
/// someone else runs on the port is never touched.
public struct LocalRedis: Sendable {
    public var host = "127.0.0.1"
    public var port: Int

    public init(port: Int) {
        self.port = port
    }

    static let ownerKey = "traffic-experiment:owner"

    var url: String { "redis://\(host):\(port)" }
    /// Per user and port: another user's record never makes a Redis "ours".
    var recordPath: String { NSTemporaryDirectory() + "traffic-experiment-redis-\(getuid())-\(port).json" }

    struct Record: Codable {
        var pid: Int
        var token: String
        var startedAt: String
    }

    /// What `ensureRunning` found or did.
    public enum Outcome: Sendable, Equatable {
        case started(pid: Int)
        case alreadyRunning(ours: Bool)
    }

    /// Uses the Redis answering on the port, or starts `redis-server` there (loopback only, no
    /// persistence) and records that this tool owns it. Something on the port that is not Redis
    /// is an error.
    public func ensureRunning() async throws(ExperimentError) -> Outcome {
        switch await probe() {
        case .redis:
            return .alreadyRunning(ours: await isOurs())
        case .notRedis(let why):
            throw ExperimentError(.redis, "port \(port) is held by something that is not Redis (\(why)); choose another --port")
        case .nothing:
            break
        }
        let token = UUID().uuidString
        // A pidfile of this start alone: the server answering later must be the one it names
        // (another process could take the port between the probe and our server's bind).
        let pidFile = NSTemporaryDirectory() + "traffic-experiment-redis-\(port)-\(token).pid"
        try? FileManager.default.removeItem(atPath: pidFile)
        // `--daemonize yes`: the server outlives this tool (workers and the collector use it).
        let status = await (try Subprocess.start("redis-server", ["--port", String(port), "--bind", host, "--save", "", "--appendonly", "no",
                                                                 "--daemonize", "yes", "--pidfile", pidFile, "--dir", NSTemporaryDirectory(), "--logfile", ""])).wait()
        guard status == 0 else { throw ExperimentError(.redis, "redis-server on port \(port) exited with \(status) (is redis-server installed? apt-get install redis-server)") }
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if case .redis = await probe() {
                let redis = try await connect()
                defer { Task { await redis.close() } }
                let pid = try await serverPID(redis)
                let started = (try? String(contentsOfFile: pidFile, encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
                try? FileManager.default.removeItem(atPath: pidFile)
                guard started == pid else {
                    throw ExperimentError(.redis, "port \(port) was taken by another Redis (pid \(pid)) while ours started; it is not ours and is left alone")
                }
                let record = Record(pid: pid, token: token, startedAt: ISO8601DateFormatter().string(from: Date()))
                do {
                    try? FileManager.default.removeItem(atPath: recordPath)
                    guard FileManager.default.createFile(atPath: recordPath, contents: try JSONEncoder().encode(record), attributes: [.posixPermissions: 0o600]) else {
                        throw ExperimentError(.io, "cannot write \(recordPath)")
                    }
                    _ = try await redis.send(.set(Self.ownerKey, token))
                } catch {
                    throw ExperimentError(.redis, "started redis-server on port \(port) but could not record owning it: \(error)")
                }
                return .started(pid: pid)
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        throw ExperimentError(.redis, "redis-server on port \(port) did not answer within 10 s")
    }

    /// Sends SHUTDOWN when this tool started the server on the port; otherwise leaves it alone.
    /// Returns whether it shut it down, and why not.
    public func shutdownIfOwned() async -> (done: Bool, reason: String) {
        // Checked and shut down on one connection: the server that passed the check is the one
        // that gets SHUTDOWN.
        guard let redis = try? await connect(quiet: true) else { return (false, "the Redis on port \(port) does not answer") }
        guard await isOurs(redis) else {
            await redis.close()
            return (false, "the Redis on port \(port) was not started by traffic-experiment: left running")
        }
        do {
            try await redis.send(.shutdown(save: false))
        } catch where error.kind == .server {
            await redis.close()
            return (false, "the Redis on port \(port) refused SHUTDOWN: \(error.message)")
        } catch {
            // The server closing the connection is the expected answer.
        }
        await redis.close()
        try? FileManager.default.removeItem(atPath: recordPath)
        return (true, "SHUTDOWN sent to the Redis on port \(port) that traffic-experiment started")
    }

    /// Whether the server on the port is the one this tool recorded starting.
    public func isOurs() async -> Bool {
        guard let redis = try? await connect() else { return false }
        let ours = await isOurs(redis)
        await redis.close()
        return ours
    }

    /// The same check on a given connection to the server.
    func isOurs(_ redis: RedisClient) async -> Bool {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: recordPath),
              (attributes[.ownerAccountID] as? NSNumber)?.uint32Value == getuid(),
              let data = FileManager.default.contents(atPath: recordPath),
              let record = try? JSONDecoder().decode(Record.self, from: data) else { return false }
        guard let token: [UInt8] = try? await redis.send(.get(Self.ownerKey)), token == Array(record.token.utf8),
              let pid = try? await serverPID(redis), pid == record.pid else { return false }
        return true
    }

    enum Probe { case redis, notRedis(String), nothing }

    func probe() async -> Probe {
        var configuration: RedisConfiguration
        do { configuration = try RedisConfiguration(url: url) } catch { return .notRedis("\(error)") }
        configuration.connectTimeout = .milliseconds(500)
        configuration.commandTimeout = .seconds(2)
        do {
            let redis = try await RedisClient.connect(configuration: configuration, label: "probe")
            await redis.close()
            return .redis
        } catch {
            switch error.kind {
            case .connectionFailed: return .nothing
            default: return .notRedis(error.message)
            }
        }
    }

    func connect(quiet: Bool = false) async throws(ExperimentError) -> RedisClient {
        var logger = Logger(label: "experiment.redis")
        if quiet { logger.logLevel = .critical } // SHUTDOWN closes the connection: expected
        do {
            return try await RedisClient.connect(configuration: RedisConfiguration(url: url), logger: logger)
        } catch {
            throw ExperimentError(.redis, "Redis at \(url): \(error)")
        }
    }

    func serverPID(_ redis: RedisClient) async throws(ExperimentError) -> Int {
        let info: String
        do { info = try await redis.send(.info("server")) } catch { throw ExperimentError(.redis, "INFO server: \(error)") }
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("process_id:") {
            if let pid = Int(line.dropFirst("process_id:".count).trimmingCharacters(in: .whitespaces)) { return pid }
        }
        throw ExperimentError(.redis, "INFO server names no process_id")
    }
}

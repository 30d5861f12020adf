import Foundation
import Logging
public import Regression
import RedisClient
import ProcessSpawn
#if canImport(Glibc)
import Glibc
#endif

/// A `redis-server` this tool may start for a run and shut down afterwards — and only if it
/// started it.
///
/// Ownership is recorded twice: a file in the system's temporary directory named by the user and
/// port (`traffic-experiment-redis-<uid>-<port>.json`: the server's pid and a random token), and
/// the same token under the key `traffic-experiment:owner` in that server. `shutdownIfOwned`
/// sends SHUTDOWN only when both agree and the server's own `process_id` is the recorded pid; a
/// Redis someone else runs on the port is never touched.
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

    /// Whether the server on the port is the one this tool started, and if not, why not.
    public enum Ownership: Sendable, Equatable {
        case ours
        case notOurs(String)
    }

    /// Uses the Redis answering on the port, or starts `redis-server` there (loopback only, no
    /// persistence) and records that this tool owns it. Something on the port that is not Redis
    /// is an error.
    public func ensureRunning() async throws(ExperimentError) -> Outcome {
        switch await probe() {
        case .redis:
            return .alreadyRunning(ours: await isOurs())
        case .notRedis(let why):
            throw ExperimentError(.redis, "port \(port) is held by something that is not Redis", cause: why, hint: "choose another --port")
        case .nothing:
            break
        }
        let token = UUID().uuidString
        // A pidfile of this start alone: the server answering later must be the one it names
        // (another process could take the port between the probe and our server's bind).
        let pidFile = NSTemporaryDirectory() + "traffic-experiment-redis-\(port)-\(token).pid"
        defer { Self.removeIfPresent(pidFile) }
        // `--daemonize yes`: the server outlives this tool (workers and the collector use it).
        let server: ChildProcess
        do {
            server = try ChildProcess("redis-server", ["--port", String(port), "--bind", host, "--save", "", "--appendonly", "no",
                                                       "--daemonize", "yes", "--pidfile", pidFile, "--dir", NSTemporaryDirectory(), "--logfile", ""],
                                      searchPath: true, input: .inherit, output: .discard, errors: .separate(.inherit))
        } catch {
            throw ExperimentError(.io, "starting redis-server on port \(port)", cause: error, hint: "is redis-server installed? apt-get install redis-server")
        }
        let status = await server.wait()
        guard status == 0 else {
            throw ExperimentError(.redis, "redis-server on port \(port) exited with \(status)", hint: "is redis-server installed? apt-get install redis-server")
        }
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            if case .redis = await probe() {
                let redis = try await connect()
                defer { Task { await redis.close() } }
                let pid = try await serverPID(redis)
                guard let started = Self.pid(inFile: pidFile), started == pid else {
                    throw ExperimentError(.redis, "port \(port) was taken by another Redis (pid \(pid)) while ours started; it is not ours and is left alone")
                }
                let record = Record(pid: pid, token: token, startedAt: ISO8601DateFormatter().string(from: Date()))
                let encoded: Data
                do { encoded = try JSONEncoder().encode(record) } catch { throw ExperimentError(.io, "encoding the ownership record", cause: error) }
                Self.removeIfPresent(recordPath)
                guard FileManager.default.createFile(atPath: recordPath, contents: encoded, attributes: [.posixPermissions: 0o600]) else {
                    throw ExperimentError(.io, "started redis-server on port \(port) but cannot write \(recordPath) to record owning it")
                }
                do { _ = try await redis.send(.set(Self.ownerKey, token)) } catch {
                    throw ExperimentError(.redis, "started redis-server on port \(port) but could not record owning it under \(Self.ownerKey)", cause: error)
                }
                return .started(pid: pid)
            }
            do { try await Task.sleep(for: .milliseconds(50)) } catch { throw ExperimentError(.timeout, "waiting for redis-server on port \(port): cancelled", cause: error) }
        }
        throw ExperimentError(.redis, "redis-server on port \(port) did not answer within 10 s")
    }

    /// Sends SHUTDOWN when this tool started the server on the port; otherwise leaves it alone.
    /// Returns whether it shut it down, and why not.
    public func shutdownIfOwned() async -> (done: Bool, reason: String) {
        // Checked and shut down on one connection: the server that passed the check is the one
        // that gets SHUTDOWN.
        let redis: RedisClient
        do { redis = try await connect(quiet: true) } catch { return (false, "the Redis on port \(port) does not answer (\(error.message))") }
        guard case .ours = await ownership(on: redis) else {
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
        Self.removeIfPresent(recordPath)
        return (true, "SHUTDOWN sent to the Redis on port \(port) that traffic-experiment started")
    }

    /// Whether the server on the port is the one this tool recorded starting.
    public func isOurs() async -> Bool {
        let redis: RedisClient
        do { redis = try await connect() } catch { return false } // nothing to own: no Redis answers
        let ownership = await ownership(on: redis)
        await redis.close()
        return ownership == .ours
    }

    /// The check on a given connection to the server: the record file (ours, this user's), the
    /// token in the server and the server's pid must all agree.
    func ownership(on redis: RedisClient) async -> Ownership {
        let record: Record
        do {
            let attributes = try FileManager.default.attributesOfItem(atPath: recordPath)
            guard (attributes[.ownerAccountID] as? NSNumber)?.uint32Value == getuid() else { return .notOurs("\(recordPath) belongs to another user") }
            record = try JSONDecoder().decode(Record.self, from: Data(contentsOf: URL(fileURLWithPath: recordPath)))
        } catch {
            return .notOurs("no readable ownership record \(recordPath) (\(error.localizedDescription))")
        }
        do {
            let token = try await redis.send(.get(Self.ownerKey))
            guard token == Array(record.token.utf8) else { return .notOurs("the server's \(Self.ownerKey) is not the recorded token") }
        } catch {
            return .notOurs("reading \(Self.ownerKey): \(error)")
        }
        do {
            let pid = try await serverPID(redis)
            return pid == record.pid ? .ours : .notOurs("the server's pid \(pid) is not the recorded \(record.pid)")
        } catch {
            return .notOurs(error.message)
        }
    }

    /// What answers on the port: Redis, something else (with what the client made of it), or nothing.
    enum Probe { case redis, notRedis(RedisError), nothing }

    func probe() async -> Probe {
        var configuration: RedisConfiguration
        do { configuration = try RedisConfiguration(url: url) } catch { return .notRedis(error) }
        configuration.connectTimeout = .milliseconds(500)
        configuration.commandTimeout = .seconds(2)
        do {
            let redis = try await RedisClient.connect(configuration: configuration, label: "probe")
            await redis.close()
            return .redis
        } catch {
            switch error.kind {
            case .connectionFailed: return .nothing
            default: return .notRedis(error)
            }
        }
    }

    func connect(quiet: Bool = false) async throws(ExperimentError) -> RedisClient {
        var logger = Logger(label: "experiment.redis")
        if quiet { logger.logLevel = .critical } // SHUTDOWN closes the connection: expected
        do {
            return try await RedisClient.connect(configuration: RedisConfiguration(url: url), logger: logger)
        } catch {
            throw .redis(error, "Redis at \(url)")
        }
    }

    func serverPID(_ redis: RedisClient) async throws(ExperimentError) -> Int {
        let info: String
        do { info = try await redis.send(.info("server")) } catch { throw .redis(error, "INFO server") }
        for line in info.split(whereSeparator: \.isNewline) where line.hasPrefix("process_id:") {
            if let pid = Int(line.dropFirst("process_id:".count).trimmingCharacters(in: .whitespaces)) { return pid }
        }
        throw ExperimentError(.redis, "INFO server names no process_id")
    }

    /// The pid a redis-server wrote into its pidfile (nil: no such file, or not a number).
    static func pid(inFile path: String) -> Int? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return Int(String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Deletes a file of ours; one that is not there is fine.
    static func removeIfPresent(_ path: String) {
        _ = unlink(path) // ENOENT is the expected case; nothing else can be done about others
    }
}

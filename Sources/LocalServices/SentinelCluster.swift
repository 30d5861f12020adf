import Durations
import Foundation
public import RedisClient
import OwnThread
import Synchronization

/// A Redis primary, its replicas and three sentinels on loopback, for failover tests: real
/// `redis-server` processes (`redis-server <conf> --sentinel` for the sentinels) on free ports,
/// with short failure detection (`down-after-milliseconds`) so a failover takes seconds.
public final class SentinelCluster: Sendable {
    /// The master name the sentinels monitor.
    public let master: String
    public let primary: RedisServer
    public let replicas: [RedisServer]
    public let sentinelPorts: [Int]
    private let sentinels: [ChildProcess]
    private let directory: URL

    /// Starts a primary with `replicas` replicas (append-only when `appendOnly`), waits until
    /// they are in sync, then starts three sentinels and waits until each names the primary.
    /// `downAfter`: how long the primary may not answer before the sentinels fail over. Short
    /// enough for quick tests, long enough that a loaded machine's stall is not taken for a
    /// death (a spurious second failover would muddle what a test checks).
    public init(replicas count: Int = 1, master: String = "mymaster", downAfter: Duration = .milliseconds(2500), appendOnly: Bool = true) async throws {
        self.master = master
        let persistence = appendOnly ? ["--appendonly", "yes", "--appendfsync", "everysec"] : []
        primary = try await RedisServer(extraArguments: persistence)
        var made: [RedisServer] = []
        for _ in 0..<count {
            made.append(try await RedisServer(extraArguments: persistence + ["--replicaof", "127.0.0.1", String(primary.port)]))
        }
        replicas = made
        let primaryPort = primary.port
        try await waitUntil("\(count) replica(s) in sync with the primary", timeout: .seconds(30)) {
            let info = try? await Self.ask(port: primaryPort, ["INFO", "replication"]) // try?: not answering yet is not in sync yet
            return info?.string?.contains("connected_slaves:\(count)") == true
                && (0..<count).allSatisfy { info?.string?.contains("slave\($0):ip=127.0.0.1") == true && info?.string?.contains("state=online") == true }
        }
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("sentinels-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var ports: [Int] = []
        var processes: [ChildProcess] = []
        let milliseconds = downAfter.wholeMilliseconds
        for index in 0..<3 {
            let port = try FreePort.find()
            let conf = directory.appendingPathComponent("sentinel-\(index).conf")
            let text = """
            port \(port)
            bind 127.0.0.1
            daemonize no
            protected-mode no
            dir \(directory.path)
            logfile \(directory.appendingPathComponent("sentinel-\(index).log").path)
            sentinel monitor \(master) 127.0.0.1 \(primaryPort) 2
            sentinel down-after-milliseconds \(master) \(milliseconds)
            sentinel failover-timeout \(master) 10000
            sentinel parallel-syncs \(master) 1
            """
            try text.write(to: conf, atomically: true, encoding: .utf8)
            processes.append(try ChildProcess("/usr/bin/redis-server", [conf.path, "--sentinel"]))
            ports.append(port)
        }
        sentinels = processes
        sentinelPorts = ports
        for port in ports {
            try await waitUntil("sentinel on \(port) names the primary", timeout: .seconds(30)) {
                (try? await Self.primary(askingSentinelOn: port, master: master)) == primaryPort // try?: not answering yet is not ready yet
            }
        }
        // Every sentinel has found the others (a failover needs a majority to agree).
        for port in ports {
            try await waitUntil("sentinel on \(port) knows the other two", timeout: .seconds(30)) {
                let reply = try? await Self.ask(port: port, ["SENTINEL", "sentinels", master]) // try?: not answering yet is not ready yet
                if case .array(let others)? = reply { return others.count == 2 }
                return false
            }
        }
    }

    deinit {
        for sentinel in sentinels { sentinel.terminate(grace: .seconds(1)) }
        try? FileManager.default.removeItem(at: directory) // try?: a temporary directory left behind is harmless, and deinit cannot report
    }

    /// `redis-sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/<master>`.
    public var url: String {
        "redis-sentinel://" + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/\(master)"
    }

    /// A client configuration for `url` with the tests' quick reconnects.
    public var configuration: RedisConfiguration {
        let sentinels = RedisConfiguration.Sentinels(addresses: sentinelPorts.map { .init(host: "127.0.0.1", port: $0) }, master: master)
        return RedisServer.quick(RedisConfiguration(endpoint: .sentinel(sentinels)))
    }

    /// Waits until the sentinels name a primary other than `old` (a failover happened), and
    /// that server says it is a master; returns its port.
    public func waitForFailover(from old: Int, timeout: Duration = .seconds(60)) async throws -> Int {
        var promoted = 0
        try await waitUntil("the sentinels promote a replica of \(old)", timeout: timeout, every: .milliseconds(50)) {
            for port in sentinelPorts {
                let named = try? await Self.primary(askingSentinelOn: port, master: master) // try?: a sentinel that does not answer (one is down) names nothing
                guard let named, named != old else { continue }
                let role = try? await Self.ask(port: named, ["ROLE"]) // try?: a server that does not answer is not the promoted one yet
                if case .array(let fields)? = role, fields.first?.string == "master" {
                    promoted = named
                    return true
                }
            }
            return false
        }
        return promoted
    }

    /// Failovers so far (the master's config epoch, as the first sentinel that answers has it).
    public func failovers() async -> Int? {
        for port in sentinelPorts {
            guard case .array(let fields)? = try? await Self.ask(port: port, ["SENTINEL", "master", master]) else { continue } // try?: a sentinel that does not answer: ask the next
            for index in stride(from: 0, to: fields.count - 1, by: 2) where fields[index].string == "config-epoch" {
                return fields[index + 1].string.flatMap { Int($0) }
            }
        }
        return nil
    }

    /// The port a sentinel names as the primary of `master`.
    static func primary(askingSentinelOn port: Int, master: String) async throws -> Int? {
        guard case .array(let fields) = try await ask(port: port, ["SENTINEL", "get-master-addr-by-name", master]), fields.count == 2 else { return nil }
        return fields[1].string.flatMap { Int($0) }
    }

    /// The sum of one numeric hash field over `keys` on one server (a single EVAL): e.g. the
    /// results the aggregator has written, from its cameras' position counters.
    public static func sum(of field: String, in keys: [String], on port: Int) async throws -> Int {
        let script = "local s = 0 for _, k in ipairs(KEYS) do s = s + (tonumber(redis.call('HGET', k, ARGV[1])) or 0) end return s"
        guard case .integer(let sum) = try await ask(port: port, ["EVAL", script, String(keys.count)] + keys + [field]) else { return 0 }
        return Int(sum)
    }

    /// One command on a fresh connection, off the cooperative pool.
    public static func ask(port: Int, _ command: [String]) async throws -> RedisReply {
        try await onOwnThread { () throws(RedisError) -> RedisReply in
            var config = RedisConfiguration(endpoint: .tcp(host: "127.0.0.1", port: port))
            config.connectTimeout = .seconds(1)
            config.commandTimeout = .seconds(2)
            return try RedisConnection(configuration: config).send(RedisArguments(command))
        }
    }
}

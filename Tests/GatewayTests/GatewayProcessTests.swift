import Foundation
import Testing
import RedisClient
import TestSupport
import TrafficModel
@testable import Gateway
import Simulation

/// The `traffic-gateway` executable as operators run it, and the per-node limits.
@Suite struct GatewayProcessTests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("traffic-gateway").path
    }

    @Test func sigtermDrainsClientsAndExitsZero() async throws {
        let redis = try await RedisServer()
        let port = try FreePort.find()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("gateway") + ".log").path
        let process = try ChildProcess(Self.binary, ["run", "--port", String(port), "--redis-url", redis.url, "--drain-seconds", "3"], output: .appendToFile(log))
        try await waitUntil("gateway answers /healthz 200", timeout: .seconds(20)) { (try? await httpGet(port: port, path: "/healthz"))?.status == 200 } // try?: not listening yet is "not yet"
        let clients = try WebSocketTestClients(port: port)
        let a = try await clients.open()
        let b = try await clients.open(path: "/ws/cameras/3")
        process.signal(SIGTERM)
        for id in [a, b] {
            try await clients.waitFor(id, type: "status") { $0["shutdown"] as? Bool == true }
            #expect(try await clients.waitClosed(id).code == 1001)
        }
        let status = try await process.wait(timeout: .seconds(60))
        #expect(status == 0)
        let output = try String(contentsOfFile: log, encoding: .utf8)
        // Drained because every client closed, not because the drain timeout passed.
        let steps = ["draining", "drained: every client closed"].compactMap { output.range(of: $0)?.lowerBound }
        #expect(steps.count == 2 && steps == steps.sorted(), "\(output.suffix(600))")
        clients.stop()
        redis.stop()
    }

    /// A `redis-cluster://` URL that cannot work stops the gateway at start, saying why: no seed
    /// answers, a seed is a plain server, or the namespace has a brace.
    @Test func aClusterURLThatCannotWorkStopsTheGatewayAtStart() async throws {
        let plain = try await RedisServer()
        defer { plain.stop() }
        let nobody = try FreePort.find()
        for (arguments, expected) in [
            (["--redis-url", "redis-cluster://127.0.0.1:\(nobody)"], "no cluster node answered"),
            (["--redis-url", "redis-cluster://127.0.0.1:\(plain.port)"], "is not in cluster mode"),
            (["--redis-url", "redis-cluster://127.0.0.1:\(plain.port)", "--namespace", "{prod}:"], "contains '{' or '}'"),
        ] {
            let log = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("gateway-cluster") + ".log").path
            let process = try ChildProcess(Self.binary, ["run", "--port", String(try FreePort.find())] + arguments, output: .appendToFile(log))
            let status = try await process.wait(timeout: .seconds(30))
            let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" // try?: no file yet reads as empty
            #expect(status != 0 && output.contains(expected), "\(arguments): exit \(status): \(output.suffix(400))")
        }
    }

    /// Resident memory of a process in bytes, from /proc.
    static func residentBytes(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? "" // try?: no file yet reads as empty
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return (Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0) * 1024
    }

    @Test func memoryHeldForLargeResultsIsReturnedOnceTheyExpire() async throws {
        // 60 MiB published at once: above Redis's default pub/sub output limit (32 MiB), which
        // drops a subscriber that a loaded machine keeps from reading fast enough.
        let redis = try await RedisServer(extraArguments: ["--client-output-buffer-limit", "pubsub 256mb 128mb 60"])
        let port = try FreePort.find()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("gateway") + ".log").path
        let process = try ChildProcess(Self.binary, ["run", "--port", String(port), "--redis-url", redis.url, "--latest-ttl", "15", "--housekeeping-seconds", "1", "--max-queue-bytes", String(256 << 20)], output: .appendToFile(log))
        defer { process.terminate(grace: .seconds(2)); redis.stop() }
        try await waitUntil("gateway answers /healthz 200", timeout: .seconds(20)) { (try? await httpGet(port: port, path: "/healthz"))?.status == 200 } // try?: not listening yet is "not yet"
        let clients = try WebSocketTestClients(port: port)
        defer { clients.stop() }
        let dashboard = try await clients.open()
        clients.send(#"{"type":"subscribe","cameras":"*"}"#, to: dashboard)
        try await clients.waitFor(dashboard, type: "subscribed")
        let baseline = Self.residentBytes(process.pid)
        let publisher = try await RedisClient.connect(configuration: redis.configuration)
        let padding = String(repeating: "p", count: 1 << 20)
        for camera in 0..<60 {
            let result = #"{"requestId":"big-\#(camera)","cameraId":\#(camera),"timestamp":"\#(ResultSimulator.rfc3339(Int64(Date().timeIntervalSince1970 * 1000)))","padding":"\#(padding)"}"#
            _ = try await publisher.send(.publish("camera:\(camera)", Array(result.utf8)))
        }
        // The peak is sampled while the results arrive: on a loaded machine the first ones may
        // already have expired (and been swept) by the time the last one is in, so half of the
        // 60 MiB held at once is the bar.
        var peak = baseline
        try await waitUntil("the dashboard got all 60 large results", timeout: .seconds(90)) {
            peak = max(peak, Self.residentBytes(process.pid))
            return clients.received(dashboard).filter { $0.hasPrefix(#"{"type":"result""#) }.count >= 60
        }
        peak = max(peak, Self.residentBytes(process.pid))
        #expect(peak - baseline > 30 << 20, "60 MiB of results held while they are current (\(baseline >> 20) → \(peak >> 20) MiB)")
        try await waitUntil("resident memory falls back once the results expired", timeout: .seconds(90), every: .milliseconds(200)) {
            Self.residentBytes(process.pid) < baseline + (peak - baseline) / 4
        }
        await publisher.close()
    }

    @Test func connectionLimitAndNewConnectionRateRefuseTheExcess() async throws {
        let limited = try await GatewayHarness { $0.maximumConnections = 3 }
        let open = try await (0..<3).asyncMap { _ in try await limited.clients.open() }
        #expect(open.count == 3)
        let fourth = limited.clients.connect()
        try await waitUntil("fourth connection refused") { limited.clients.failure(fourth) != nil }
        await limited.shutdown()

        let throttled = try await GatewayHarness { $0.connectRate = 0.001; $0.connectBurst = 2 }
        _ = try await throttled.clients.open()
        _ = try await throttled.clients.open()
        let third = throttled.clients.connect()
        try await waitUntil("third connection refused by the rate limit") { throttled.clients.failure(third) != nil }
        let metrics = String(decoding: throttled.gateway.metrics.render(), as: UTF8.self)
        #expect(metrics.contains(#"gateway_connections_refused_total{reason="rate"} 1"#))
        await throttled.shutdown()
    }

    @Test func aClientThatStopsAnsweringIsDroppedAfterTheIdleTimeout() async throws {
        let h = try await GatewayHarness { $0.pingInterval = .seconds(1); $0.idleTimeout = .seconds(2) }
        let silent = try await h.clients.open()
        let alive = try await h.clients.open()
        try await h.clients.pauseReading(silent) // never reads the PING, so never answers it
        try await waitUntil("silent client dropped", timeout: .seconds(15)) { await h.gateway.connectionCount() == 1 }
        #expect(h.clients.isOpen(alive), "a client that answers pings stays")
        await h.shutdown()
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}

/// Settings from the environment.
@Suite struct GatewaySettingTests {
    @Test func anEnvironmentSettingThatDoesNotParseIsRefusedByName() async throws {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("gateway-env") + ".log").path
        var environment = ProcessInfo.processInfo.environment
        environment["GATEWAY_PORT"] = "eighty"
        let process = try ChildProcess(GatewayProcessTests.binary, ["run", "--redis-url", "redis://127.0.0.1:1"], environment: environment, output: .appendToFile(log))
        let status = try await process.wait(timeout: .seconds(30))
        let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" // try?: no file yet reads as empty
        #expect(status != 0 && output.contains("GATEWAY_PORT=eighty"), "\(output)")
    }
}

import Foundation
import RedisClient
import Testing
import TestSupport
@testable import Gateway

/// The gateway across a Redis failover (issue 14): clients are told, then get everything
/// published on the new primary; a client reconnecting meanwhile recovers or is told of a gap.
@Suite struct GatewayFailoverTests {
    @Test func clientsAreToldOfTheOutageAndMissNothingAfterTheFailover() async throws {
        let cluster = try await SentinelCluster()
        let h = try await GatewayHarness(sentinels: cluster)
        let watcher = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[4]}"#, to: watcher)
        try await h.clients.waitFor(watcher, type: "snapshot")
        try await h.publish(camera: 4, count: 20)
        try await h.waitForResults(watcher, count: 20)
        #expect(try await h.redis.send(.raw(["WAIT", "1", "5000"])) == .integer(1), "the replica has the first 20")
        let epoch = try #require(h.clients.objects(watcher).first { $0["type"] as? String == "result" }?["epoch"] as? String)

        let old = cluster.primary.port
        cluster.primary.kill()
        try await h.clients.waitFor(watcher, type: "status", timeout: .seconds(30)) { $0["redis"] as? String == "down" }

        // Reconnecting during the outage, from its position: answered, never left in silence.
        let returning = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[4],"since":{"4":{"offset":20,"epoch":"\#(epoch)"}}}"#, to: returning)

        _ = try await cluster.waitForFailover(from: old)
        try await waitUntil("the publisher reaches the new primary", timeout: .seconds(30)) { (try? await h.redis.send(.ping())) != nil } // try?: an error is "not yet" while Redis comes back
        try await h.clients.waitFor(watcher, type: "status", timeout: .seconds(60)) { $0["redis"] as? String == "up" }
        try await h.publish(camera: 4, count: 10)

        try await h.waitForResults(watcher, count: 30, timeout: .seconds(60))
        #expect(h.results(watcher).map(\.offset) == Array(1...30), "every result once, in order, across the failover")
        let answer = try await h.clients.waitFor(returning, timeout: .seconds(60), anyOf: ["recovered", "gap"])
        if answer["type"] as? String == "recovered", answer["recovered"] as? Bool == true {
            try await h.waitForResults(returning, count: 10, timeout: .seconds(60))
            #expect(h.results(returning).map(\.offset) == Array(21...30), "recovered on the new primary, then live")
        } else {
            #expect(answer["type"] as? String == "gap" || answer["recovered"] as? Bool == false, "told honestly: \(answer)")
        }
        await h.shutdown()
    }
}

/// Sentinel URLs that cannot work are refused clearly at start (issue 14).
@Suite struct SentinelStartupTests {
    /// Runs `traffic-gateway run` with `url`: its exit status when `exits`, else nil once its
    /// log says `logged` (it is still running then); and its output.
    func gateway(_ url: String, exits: Bool, logged: String = "") async throws -> (status: Int32?, log: String) {
        let port = try FreePort.find()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("gateway") + ".log").path
        let process = try ChildProcess(GatewayProcessTests.binary, ["run", "--port", String(port), "--redis-url", url], output: .appendToFile(log))
        defer { process.terminate(grace: .seconds(2)) }
        func text() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" } // try?: no file yet reads as empty
        if exits { return (try await process.wait(timeout: .seconds(30)), text()) }
        try await waitUntil("the gateway logs '\(logged)'", timeout: .seconds(30)) { text().contains(logged) || !process.isRunning }
        return (process.isRunning ? nil : process.exitStatus, text())
    }

    @Test func aBadURLAnUnknownMasterAndNoSentinelEachSayWhatIsWrong() async throws {
        let bad = try await gateway("redis-sentinel://127.0.0.1:26379", exits: true)
        #expect(bad.status != nil && bad.status != 0 && bad.log.contains("expected redis-sentinel://host:port"), "\(bad.log.suffix(400))")

        let cluster = try await SentinelCluster(replicas: 0, appendOnly: false)
        let unknown = try await gateway("redis-sentinel://127.0.0.1:\(cluster.sentinelPorts[0])/nosuchmaster", exits: true)
        #expect(unknown.status == 2 && unknown.log.contains("no sentinel knows a master named 'nosuchmaster'"), "exits at once: \(unknown.log.suffix(400))")

        let closed = try FreePort.find()
        let nobody = try await gateway("redis-sentinel://127.0.0.1:\(closed)/mymaster", exits: false, logged: "Redis not reachable at start")
        #expect(nobody.status == nil, "an unreachable Redis is waited for, not fatal")
        #expect(nobody.log.contains("127.0.0.1:\(closed)") && nobody.log.contains("Redis not reachable at start") && nobody.log.contains("no sentinel named a primary"), "\(nobody.log.suffix(400))")
    }
}

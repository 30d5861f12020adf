import Foundation
import Testing
import TestSupport
@testable import RedisClient

/// Redis behind Sentinel (issue 14): the URL form, discovery of the primary, following a
/// failover without a restart, and clear errors — against real redis-server and sentinel
/// processes.
@Suite struct SentinelTests {
    @Test func theSentinelURLNamesSentinelsMasterDatabaseAndCredentials() throws {
        let config = try RedisConfiguration(url: "redis-sentinel://app:s%40cret@10.0.0.1:26379,10.0.0.2,[::1]:26380/mymaster/2?sentinel_password=watch")
        guard case .sentinel(let sentinels) = config.endpoint else { Issue.record("not a sentinel endpoint: \(config)"); return }
        #expect(sentinels.addresses == [.init(host: "10.0.0.1", port: 26379), .init(host: "10.0.0.2", port: 26379), .init(host: "::1", port: 26380)])
        #expect(sentinels.master == "mymaster" && sentinels.password == "watch" && sentinels.username == nil)
        #expect(config.username == "app" && config.password == "s@cret" && config.database == 2)
        #expect(config.description == "redis-sentinel://app:***@10.0.0.1:26379,10.0.0.2:26379,[::1]:26380/mymaster/2")
        #expect(RedisConfiguration.masked("redis-sentinel://a:pw@h:1/m?sentinel_password=watch&x=1") == "redis-sentinel://a:***@h:1/m?sentinel_password=***&x=1")

        for (url, why) in [("redis-sentinel://h1:26379,h2:26379", "master-name"), ("redis-sentinel://h1,,h2/m", "empty sentinel address"),
                           ("redis-sentinel://h1:99999/m", "not 1–65535"), ("redis-sentinel://h1/", "no master name"),
                           ("redis-sentinel://h1/m/x", "not a number"), ("rediss-sentinel://h1/m", "not supported")] {
            #expect(throws: RedisError.self, "\(url)") { try RedisConfiguration(url: url) }
            do { _ = try RedisConfiguration(url: url) } catch {
                #expect(error.kind == .invalidConfiguration && error.message.contains(why), "\(url): \(error.message)")
            }
        }
    }

    @Test func noSentinelReachableAndAnUnknownMasterAreClearErrors() async throws {
        let closed = try [FreePort.find(), FreePort.find()]
        var nobody = try RedisConfiguration(url: "redis-sentinel://127.0.0.1:\(closed[0]),127.0.0.1:\(closed[1])/mymaster")
        nobody.connectTimeout = .milliseconds(500)
        do {
            _ = try RedisConnection(configuration: nobody)
            Issue.record("connected through sentinels that do not exist")
        } catch {
            #expect(error.kind == .connectionFailed && error.isTransient)
            #expect(error.message.contains("no sentinel named a primary for 'mymaster'") && error.message.contains("127.0.0.1:\(closed[0])") && error.message.contains("127.0.0.1:\(closed[1])"), "\(error)")
        }

        let cluster = try await SentinelCluster(replicas: 0, appendOnly: false)
        var unknown = cluster.configuration
        guard case .sentinel(var sentinels) = unknown.endpoint else { return }
        sentinels.master = "nosuchmaster"
        unknown.endpoint = .sentinel(sentinels)
        do {
            _ = try RedisConnection(configuration: unknown)
            Issue.record("connected to a master the sentinels do not know")
        } catch {
            #expect(error.kind == .invalidConfiguration && !error.isTransient)
            #expect(error.message.contains("no sentinel knows a master named 'nosuchmaster'"), "\(error)")
        }
        let known = try RedisConnection(configuration: cluster.configuration)
        #expect(known.server.contains("127.0.0.1:\(cluster.primary.port)"), "\(known.server)")
    }

    @Test func aClientFollowsAFailoverToThePromotedReplicaWithoutARestart() async throws {
        let cluster = try await SentinelCluster()
        let client = RedisClient(configuration: cluster.configuration, label: "sentinel-test")
        let key = uniqueName("k")
        _ = try await client.send(.set(key, Array("before".utf8)))
        #expect(try await client.send(.raw(["WAIT", "1", "5000"])) == .integer(1), "the replica has it")
        let old = cluster.primary.port
        cluster.primary.kill()

        // Writes fail while there is no primary, then land on the promoted replica.
        try await waitUntil("a write succeeds after the failover", timeout: .seconds(60), every: .milliseconds(100)) {
            (try? await client.send(.set(key + ":after", Array("after".utf8)))) != nil // try?: writes fail until the failover is done
        }
        let promoted = try await cluster.waitForFailover(from: old)
        #expect(promoted == cluster.replicas[0].port)
        #expect(try await SentinelCluster.ask(port: promoted, ["GET", key]).string == "before", "acknowledged by the replica before the failover: kept")
        #expect(try await SentinelCluster.ask(port: promoted, ["GET", key + ":after"]).string == "after", "written to the new primary")
        #expect(client.statistics.reconnects >= 1)
        await client.close()
    }

    @Test func aSwitchAnnouncedByTheSentinelsMovesClientsOffADemotedPrimary() async throws {
        let cluster = try await SentinelCluster()
        let client = RedisClient(configuration: cluster.configuration, label: "sentinel-test")
        let channel = uniqueName("ch")
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: cluster.configuration)
        try await subscriber.subscribe([channel])
        _ = try await client.send(.set(uniqueName("warm"), Array("x".utf8)))

        // A manual failover: the old primary lives on as a replica, so the open connections to
        // it are not lost. The sentinels' +switch-master moves the client before its next
        // command — reads included, which a demoted primary would still answer, staler.
        let old = cluster.primary.port
        _ = try await SentinelCluster.ask(port: cluster.sentinelPorts[0], ["SENTINEL", "failover", cluster.master])
        let promoted = try await cluster.waitForFailover(from: old)
        try await waitUntil("the client moved on the announcement", timeout: .seconds(30), every: .milliseconds(50)) {
            _ = try? await client.send(.get("nothing")) // try?: only the reconnect it causes counts here
            return client.statistics.reconnects >= 1
        }
        let key = uniqueName("moved")
        _ = try await client.send(.set(key, Array("v".utf8))) // at once: no READONLY on the way
        #expect(try await SentinelCluster.ask(port: promoted, ["GET", key]).string == "v")
        // (A write that still reaches a demoted primary answers -READONLY, which drops the
        // connection the same way: RedisError.isTransient, tested with the URL forms above.)
        #expect(RedisError(kind: .server, message: "READONLY You can't write against a read only replica.").isTransient)

        // The subscriber moved too (it was told of the switch), and re-subscribed there: what
        // is published on the new primary arrives. (Published until it does: pub/sub keeps
        // nothing for a subscriber between two connections.)
        let publisher = Task {
            while !Task.isCancelled {
                _ = try? await SentinelCluster.ask(port: promoted, ["PUBLISH", channel, "hello"]) // try?: a publish lost is sent again
                try? await Task.sleep(for: .milliseconds(100)) // try?: cancelled means the test is done with it
            }
        }
        defer { publisher.cancel() }
        let received = try await collect(events, "a message published on the new primary", timeout: .seconds(30)) { seen in
            seen.contains { if case .message(let m) = $0 { m.payload == Array("hello".utf8) } else { false } }
        }
        #expect(received.contains { if case .reconnected = $0 { true } else { false } }, "the subscriber reconnected on the switch: \(received.prefix(6))")
        await subscriber.close()
        await client.close()
    }
    @Test func closingASentinelClientOrSubscriberLeavesNoThreadOrConnectionBehind() async throws {
        let cluster = try await SentinelCluster(replicas: 0, appendOnly: false)
        let watched = cluster.sentinelPorts[0]
        // Each watch is a pub/sub connection to the first sentinel on a thread named after it.
        func watchConnections() async throws -> Int {
            guard let list = try await SentinelCluster.ask(port: watched, ["CLIENT", "LIST"]).string else { return -1 }
            return list.split(separator: "\n").filter { $0.contains(" sub=1 ") }.count
        }
        func watchThreads() throws -> Int {
            try threadNames().filter { $0 == "sentinel:\(watched)" }.count
        }
        let (connectionsBefore, threadsBefore) = (try await watchConnections(), try watchThreads())
        #expect(connectionsBefore == 0 && threadsBefore == 0)

        let client = RedisClient(configuration: cluster.configuration, label: "sentinel-close")
        _ = try await client.send(.set(uniqueName("k"), "v"))
        let (subscriber, _) = RedisSubscriber.makeStream(configuration: cluster.configuration)
        try await subscriber.subscribe([uniqueName("ch")])
        // A watch's thread names itself as it starts, so both counts are waited for.
        try await waitUntil("both watches are connected, each on its own thread", timeout: .seconds(20)) {
            try await watchConnections() == 2 && (try watchThreads()) == 2
        }

        await client.close()
        try await waitUntil("the client's watch is gone", timeout: .seconds(20)) { try await watchConnections() == 1 && (try watchThreads()) == 1 }
        await subscriber.close()
        try await waitUntil("the subscriber's watch is gone", timeout: .seconds(20)) { try await watchConnections() == 0 && (try watchThreads()) == 0 }
        await #expect { _ = try await client.send(.ping()) } throws: { ($0 as! RedisError).kind == .closed }
    }

    @Test func aDroppedSentinelClientEndsItsWatch() async throws {
        let cluster = try await SentinelCluster(replicas: 0, appendOnly: false)
        let name = "sentinel:\(cluster.sentinelPorts[0])"
        var client: RedisClient? = RedisClient(configuration: cluster.configuration, label: "sentinel-drop")
        _ = try await client?.send(.ping())
        try await waitUntil("the watch runs", timeout: .seconds(20)) { try threadNames().contains(name) }
        client = nil // never closed
        try await waitUntil("the dropped client's watch thread ends", timeout: .seconds(20)) { !(try threadNames()).contains(name) }
    }
}

/// The names of this process' threads (`/proc/self/task/*/comm`).
private func threadNames() throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap { task in
        (try? String(contentsOfFile: "/proc/self/task/\(task)/comm", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) // try?: a thread that ended since the listing has no name
    }
}

import Foundation
import Synchronization
import Testing
import TestSupport
import TrafficModel
@testable import Gateway

/// Gap-free recovery from a client position, refusal when impossible, Redis loss under clients.
@Suite struct GatewayRecoveryTests {
    @Test func aClientKilledMidStreamResumesWithNoGapAndNoDuplicate() async throws {
        let h = try await GatewayHarness()
        let first = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[3]}"#, to: first)
        try await h.clients.waitFor(first, type: "snapshot")
        // A publisher that keeps going while the client dies and comes back.
        let published = Mutex(0)
        let publisher = Task {
            for _ in 0..<60 {
                try await h.publish(camera: 3)
                published.withLock { $0 += 1 }
                try await Task.sleep(for: .milliseconds(5))
            }
        }
        do {
            // A loaded machine publishes slowly (each publish is a Redis transaction): a deadline, not a pace.
            try await h.waitForResults(first, count: 15, timeout: .seconds(40))
        } catch {
            let outcome = try? await withDeadline(.seconds(1)) { await publisher.result } // try?: a publisher still running after 1 s is cancelled below
            throw LocalServiceError("\(error); the publisher: \(outcome.map { "\($0)" } ?? "still running")")
        }
        h.clients.close(first)
        _ = try await h.clients.waitClosed(first)
        let seen = h.results(first)
        let last = try #require(seen.last)
        let epoch = try #require(h.clients.objects(first).last { $0["type"] as? String == "result" }?["epoch"] as? String)
        try await waitUntil("a few results are published while no client watches", timeout: .seconds(40)) {
            published.withLock { $0 } >= Int(last.offset) + 3
        }
        let second = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[3],"since":{"3":{"offset":\#(last.offset),"epoch":"\#(epoch)"}}}"#, to: second)
        let recovered = try await h.clients.waitFor(second, type: "recovered")
        #expect(recovered["recovered"] as? Bool == true)
        try await publisher.value
        try await waitUntil("second client reaches offset 60") { h.results(second).last?.offset == 60 }
        let resumed = h.results(second).map(\.offset)
        #expect(resumed == Array((last.offset + 1)...60), "exactly the missed results, then live ones: no gap, no duplicate, in order")
        #expect((recovered["missed"] as? Int ?? -1) >= 1)
        #expect(!h.types(second).contains("snapshot"), "a successful recovery sends no snapshot")
        await h.shutdown()
    }

    @Test func recoveryIsRefusedWhenTooOldOrFromAnotherEpoch() async throws {
        let h = try await GatewayHarness(historyLength: 10)
        try await h.publish(camera: 4, count: 400)
        let history = try await h.redis.send(.xlen(h.keys.history(4)))
        #expect(history < 400, "history is trimmed (approximately) to its length")
        let position = try await h.redis.send(.hget(h.keys.position(4), field: "epoch"))
        let epoch = String(decoding: try #require(position), as: UTF8.self)

        let old = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[4],"since":{"4":{"offset":1,"epoch":"\#(epoch)"}}}"#, to: old)
        let refused = try await h.clients.waitFor(old, type: "recovered")
        #expect(refused["recovered"] as? Bool == false)
        #expect((refused["reason"] as? String)?.contains("no longer holds") == true)
        let snapshot = try await h.clients.waitFor(old, type: "snapshot")
        #expect(((snapshot["cameras"] as? [[String: Any]])?.first?["offset"] as? NSNumber)?.int64Value == 400, "the snapshot replaces the impossible recovery")
        #expect(h.results(old).isEmpty, "never a partial recovery")

        let otherEpoch = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[4],"since":{"4":{"offset":399,"epoch":"not-\#(epoch)"}}}"#, to: otherEpoch)
        let changed = try await h.clients.waitFor(otherEpoch, type: "recovered")
        #expect(changed["recovered"] as? Bool == false)
        #expect((changed["reason"] as? String)?.contains("epoch") == true)
        try await h.clients.waitFor(otherEpoch, type: "snapshot")

        // A recent position in the same epoch recovers exactly.
        let recent = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[4],"since":{"4":{"offset":398,"epoch":"\#(epoch)"}}}"#, to: recent)
        let ok = try await h.clients.waitFor(recent, type: "recovered")
        #expect(ok["recovered"] as? Bool == true && ok["missed"] as? Int == 2)
        try await h.waitForResults(recent, count: 2)
        #expect(h.results(recent).map(\.offset) == [399, 400])
        await h.shutdown()
    }

    @Test func redisKilledAndRestartedUnderLiveClientsLosesNothing() async throws {
        let h = try await GatewayHarness(redisArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        var watchers: [UInt64] = []
        for _ in 0..<3 {
            let id = try await h.clients.open()
            h.clients.send(#"{"type":"subscribe","cameras":[8]}"#, to: id)
            try await h.clients.waitFor(id, type: "snapshot")
            watchers.append(id)
        }
        try await h.publish(camera: 8, count: 5)
        for id in watchers { try await h.waitForResults(id, count: 5) }
        h.redisServer.kill()
        for id in watchers {
            let status = try await h.clients.waitFor(id, type: "status") { $0["redis"] as? String == "down" }
            #expect(status["redis"] as? String == "down")
        }
        try await h.redisServer.start()
        // Published while the gateway's subscriber is still reconnecting: pub/sub drops these,
        // the gateway must catch them up from history. (The test's own connection must notice
        // the restart first: its first command fails before anything is sent.)
        try await waitUntil("the test's Redis connection is back") { (try? await h.redis.send(.ping())) != nil } // try?: an error is "not yet" while Redis comes back
        try await h.publish(camera: 8, count: 5)
        for id in watchers {
            try await h.clients.waitFor(id, type: "status", timeout: .seconds(20)) { $0["redis"] as? String == "up" }
        }
        try await h.publish(camera: 8, count: 5)
        for id in watchers {
            try await h.waitForResults(id, count: 15, timeout: .seconds(20))
            #expect(h.results(id).map(\.offset) == Array(1...15), "client \(id): every result once, in order, across the outage")
            #expect(h.clients.isOpen(id), "clients stay connected through a Redis outage")
        }
        try await h.waitHealthy()
        await h.shutdown()
    }

    @Test func aWildcardClientResumesEveryCameraItKnewAndGetsSnapshotsOfTheRest() async throws {
        // What the dashboard does after a reconnect: "*" with the position of each camera it saw.
        let h = try await GatewayHarness()
        try await h.publish(camera: 51, count: 3)
        try await h.publish(camera: 52, count: 2)
        let first = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":"*"}"#, to: first)
        let snapshot = try await h.clients.waitFor(first, type: "snapshot")
        let entries = try #require(snapshot["cameras"] as? [[String: Any]])
        var since: [String: String] = [:]
        for entry in entries {
            guard let camera = entry["camera"] as? Int, let offset = entry["offset"] as? Int, let epoch = entry["epoch"] as? String else { continue }
            since[String(camera)] = #"{"offset":\#(offset),"epoch":"\#(epoch)"}"#
        }
        #expect(Set(since.keys) == ["51", "52"])
        h.clients.close(first)
        _ = try await h.clients.waitClosed(first)

        try await h.publish(camera: 51, count: 2)   // missed: offsets 4, 5
        try await h.publish(camera: 53, count: 1)   // a camera it never saw
        let second = try await h.clients.open()
        let sinceJSON = "{" + since.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        h.clients.send(#"{"type":"subscribe","cameras":"*","since":\#(sinceJSON)}"#, to: second)
        let recovered51 = try await h.clients.waitFor(second, type: "recovered") { $0["camera"] as? Int == 51 }
        #expect(recovered51["recovered"] as? Bool == true && recovered51["missed"] as? Int == 2)
        let recovered52 = try await h.clients.waitFor(second, type: "recovered") { $0["camera"] as? Int == 52 }
        #expect(recovered52["recovered"] as? Bool == true && recovered52["missed"] as? Int == 0)
        let rest = try await h.clients.waitFor(second, type: "snapshot")
        let restCameras = (rest["cameras"] as? [[String: Any]])?.compactMap { $0["camera"] as? Int } ?? []
        #expect(restCameras == [53], "cameras under recovery are not in the wildcard snapshot")
        try await h.waitForResults(second, count: 2)
        try await h.publish(camera: 52)
        try await h.publish(camera: 54)
        try await h.waitForResults(second, count: 4)
        #expect(h.results(second).map { "\($0.camera)/\($0.offset)" } == ["51/4", "51/5", "52/3", "54/1"])
        await h.shutdown()
    }
}

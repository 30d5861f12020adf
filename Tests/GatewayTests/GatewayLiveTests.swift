import Foundation
import Testing
import TestSupport
import TrafficModel
@testable import Gateway

/// Snapshot, live delivery, fan-out and filtering against a real redis-server.
@Suite struct GatewayLiveTests {
    @Test func snapshotComesFirstThenLiveResultsInOrder() async throws {
        let h = try await GatewayHarness()
        try await h.publish(camera: 1, count: 3)
        let client = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[1]}"#, to: client)
        let snapshot = try await h.clients.waitFor(client, type: "snapshot")
        let entry = try #require((snapshot["cameras"] as? [[String: Any]])?.first)
        #expect(entry["camera"] as? Int == 1)
        #expect((entry["offset"] as? NSNumber)?.int64Value == 3, "the snapshot carries the latest result's position")
        #expect(((entry["result"] as? [String: Any])?["requestId"] as? String)?.hasSuffix("-3") == true)
        try await h.publish(camera: 1, count: 2)
        try await h.waitForResults(client, count: 2)
        #expect(h.results(client).map(\.offset) == [4, 5])
        let types = h.types(client)
        #expect(types.first == "status")
        #expect(types.firstIndex(of: "snapshot")! < types.firstIndex(of: "result")!, "snapshot before any live result")
        await h.shutdown()
    }

    @Test func fansOutToManyClientsEachGettingOnlyItsCameras() async throws {
        let h = try await GatewayHarness()
        var one: [UInt64] = []
        var two: [UInt64] = []
        for i in 0..<20 {
            let id = try await h.clients.open()
            h.clients.send(#"{"type":"subscribe","cameras":[\#(i % 2 == 0 ? 11 : 12)]}"#, to: id)
            if i % 2 == 0 { one.append(id) } else { two.append(id) }
        }
        let everything = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":"*"}"#, to: everything)
        for id in one + two + [everything] { try await h.clients.waitFor(id, type: "snapshot") }
        for _ in 0..<5 {
            try await h.publish(camera: 11)
            try await h.publish(camera: 12)
            try await h.publish(camera: 13)
        }
        for id in one { try await h.waitForResults(id, count: 5) }
        for id in two { try await h.waitForResults(id, count: 5) }
        try await h.waitForResults(everything, count: 15)
        // Nothing extra may trickle in: one more result per camera, and once each client has it,
        // anything misrouted before it would be there too (one connection, delivered in order).
        for camera in [11, 12, 13] { try await h.publish(camera: camera) }
        for id in one + two { try await h.waitForResults(id, count: 6) }
        try await h.waitForResults(everything, count: 18)
        for id in one { #expect(h.results(id).map(\.camera) == Array(repeating: 11, count: 6) && h.results(id).map(\.offset) == [1, 2, 3, 4, 5, 6]) }
        for id in two { #expect(h.results(id).map(\.camera) == Array(repeating: 12, count: 6)) }
        let all = h.results(everything)
        #expect(all.count == 18)
        for camera in [11, 12, 13] { #expect(all.filter { $0.camera == camera }.map(\.offset) == [1, 2, 3, 4, 5, 6]) }
        #expect(await h.gateway.core.subscribedCameras == [11, 12])
        await h.shutdown()
    }

    @Test func unsubscribeStopsDeliveryAndReleasesTheChannel() async throws {
        let h = try await GatewayHarness()
        let client = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[21,22]}"#, to: client)
        try await h.clients.waitFor(client, type: "snapshot")
        h.clients.send(#"{"type":"unsubscribe","cameras":[21]}"#, to: client)
        try await h.clients.waitFor(client, type: "unsubscribed")
        try await h.publish(camera: 21)
        try await h.publish(camera: 22)
        // Camera 21's result was published first: had it been delivered, it would be before 22's.
        try await h.waitForResults(client, count: 1)
        #expect(h.results(client).map(\.camera) == [22])
        try await waitUntil("channel of camera 21 released in Redis") {
            let reply = try await h.redis.send(.raw(["PUBSUB", "CHANNELS", h.keys.cameraChannel(21)]))
            if case .array(let items) = reply { return items.isEmpty }
            return false
        }
        await h.shutdown()
    }

    @Test func listenOnlyPathStreamsOneCameraAndRefusesCommands() async throws {
        let h = try await GatewayHarness()
        try await h.publish(camera: 5, count: 2)
        let client = try await h.clients.open(path: "/ws/cameras/5")
        try await h.clients.waitFor(client, type: "snapshot")
        try await h.publish(camera: 5)
        try await h.publish(camera: 6)
        try await h.waitForResults(client, count: 1)
        #expect(h.results(client).map(\.offset) == [3])
        h.clients.send(#"{"type":"subscribe","cameras":[6]}"#, to: client)
        let error = try await h.clients.waitFor(client, type: "error")
        #expect(error["reason"] as? String == "listen_only")
        await h.shutdown()
    }

    @Test func aSlowClientIsDisconnectedWhileOthersGetEverything() async throws {
        let h = try await GatewayHarness { $0.maximumQueuedBytes = 512 * 1024 }
        let slow = try await h.clients.open()
        let fast = try await h.clients.open()
        for id in [slow, fast] {
            h.clients.send(#"{"type":"subscribe","cameras":[7]}"#, to: id)
            try await h.clients.waitFor(id, type: "snapshot")
        }
        try await h.clients.pauseReading(slow)
        // The gateway closes the moment the queue is over its limit; the close frame waits (up
        // to 2 s) for the socket to drain, so the client reads again at once and must get it.
        let resumed = Task {
            try await waitUntil("the gateway finds the slow client over its limit", timeout: .seconds(30), every: .milliseconds(2)) {
                String(decoding: h.gateway.metrics.render(), as: UTF8.self).contains("gateway_slow_client_disconnects_total 1")
            }
            try await h.clients.pauseReading(slow, false)
        }
        // ~12 MB in bursts of 200 KB: far more than socket buffers and the 512 KiB queue hold
        // for a client that does not read, never more than the queue for one that does.
        for _ in 0..<60 { try await h.publish(camera: 7, count: 10, padding: 20_000) }
        try await h.waitForResults(fast, count: 600, timeout: .seconds(30))
        #expect(h.results(fast).map(\.offset) == (1...600).map(Int64.init), "the fast client got every result in order")
        try await resumed.value
        let close = try await h.clients.waitClosed(slow)
        #expect(close.code == 1008, "closed as too slow: \(close)")
        try await waitUntil("slow client dropped") { await h.gateway.connectionCount() == 1 }
        let metrics = String(decoding: h.gateway.metrics.render(), as: UTF8.self)
        #expect(metrics.contains("gateway_slow_client_disconnects_total 1"))
        await h.shutdown()
    }

    @Test func aWildcardSnapshotBiggerThanTheQueueLimitArrivesInBoundedFrames() async throws {
        let h = try await GatewayHarness { $0.maximumQueuedBytes = 64 * 1024 }
        for batch in 0..<6 {
            for camera in (batch * 50)..<(batch * 50 + 50) { try await h.publish(camera: 1000 + camera, padding: 2_000) }
        }
        let client = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":"*"}"#, to: client)
        var cameras: Set<Int> = []
        try await waitUntil("all 300 cameras arrive in snapshot frames") {
            cameras = Set(h.clients.objects(client).filter { $0["type"] as? String == "snapshot" }
                .flatMap { ($0["cameras"] as? [[String: Any]]) ?? [] }.compactMap { $0["camera"] as? Int })
            return cameras.count == 300
        }
        let frames = h.clients.received(client).filter { $0.hasPrefix(#"{"type":"snapshot""#) }
        #expect(frames.count >= 3, "~700 KB of snapshot in several frames")
        #expect(frames.allSatisfy { $0.utf8.count <= 256 * 1024 + 4096 })
        #expect(h.clients.isOpen(client), "a snapshot burst over the live queue limit is not a slow client")
        await h.shutdown()
    }
}

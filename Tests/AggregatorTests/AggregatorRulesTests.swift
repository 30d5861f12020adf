import Foundation
import KafkaClient
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation

/// SPEC §2–5, one rule per test, against a real redis-server and the embedded broker.
@Suite struct AggregatorRulesTests {
    @Test func mergesPublishesStoresLatestAndAlerts() async throws {
        let h = try await AggregatorHarness()
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: h.redisServer.configuration)
        try await subscriber.psubscribe([h.keys.allCamerasPattern])
        try h.start()
        var simulator = ResultSimulator(cameras: 5, alertRatio: 0.3, seed: 7, runTag: "rules")
        let start: Int64 = 1_760_000_000_000
        let frames = (0..<200).map { simulator.next(at: start + Int64($0) * 10) }
        try await h.send(frames)
        try await h.waitUntilCommitted()

        let expected = frames.count
        let messages = try await collect(events, "every result published") { events in
            Set(events.compactMap { if case .message(let m) = $0 { AggregatorHarness.requestId(m.payload) } else { nil } }).count == expected
        }
        var published: [String: [UInt8]] = [:]
        for case .message(let m) in messages { published[AggregatorHarness.requestId(m.payload)] = m.payload }
        #expect(Set(published.keys) == Set(frames.map(\.requestId)))
        let sample = try #require(published[frames[0].requestId])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(sample)) as? [String: Any])
        #expect((object["detectedObjects"] as? [Any])?.isEmpty == false)
        #expect(object["detectionMissing"] == nil)

        for camera in 0..<5 {
            let mine = frames.filter { $0.cameraId == camera }
            let latest = try #require(try await h.latest(camera))
            #expect(AggregatorHarness.requestId(latest) == mine.last?.requestId)
            let ttl = try await h.redis.send(.raw(["TTL", h.keys.latest(camera)]))
            guard case .integer(let seconds) = ttl else { Issue.record("TTL reply \(ttl)"); continue }
            #expect((1...300).contains(seconds), "latest carries a TTL, never longer than the configured 300 s")
            #expect(try await h.alerts(camera) == mine.filter(\.isAlert).map(\.requestId).reversed(), "camera \(camera): newest first, each once")
        }
        try await h.stop()
        await subscriber.close()
    }

    @Test func duplicateDeliveryPushesOneAlert() async throws {
        let h = try await AggregatorHarness()
        try h.start()
        let message = assessment("dup-1", camera: 3, time: "2025-10-20T10:30:00Z", level: "critical")
        try h.produce(message, camera: 3)
        try h.produce(message, camera: 3)
        try await h.flush()
        try await h.waitUntilCommitted()
        // Processed again by a restarted aggregator (as after a crash before commit).
        try await h.stop()
        try h.produce(message, camera: 3)
        try await h.flush()
        try h.start()
        try await h.waitUntilCommitted()
        #expect(try await h.alerts(3) == ["dup-1"])
        // Deduplicated by the camera's list of alerted requestIds: one key per camera, none per alert.
        #expect(try await h.redis.send(.lrange(h.keys.alerted(camera: 3), start: 0, stop: -1)) == [Array("dup-1".utf8)])
        #expect(try await h.redis.send(.exists([h.keys.legacyAlertMarker("dup-1")])) == 0)
        try await h.stop()
    }

    @Test func latestNeverGoesBackInTime() async throws {
        let h = try await AggregatorHarness(partitions: 1)
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: h.redisServer.configuration)
        try await subscriber.subscribe([h.keys.cameraChannel(9)])
        try h.start()
        try h.produce(assessment("new", camera: 9, time: "2025-10-20T10:30:05Z"), camera: 9)
        try await h.flush()
        try await h.waitUntilCommitted()
        try h.produce(assessment("old", camera: 9, time: "2025-10-20T10:30:01Z"), camera: 9)
        try await h.flush()
        try await h.waitUntilCommitted()
        #expect(AggregatorHarness.requestId(try #require(try await h.latest(9))) == "new")
        let order = try await collect(events, "both results published") { events in
            events.filter { if case .message = $0 { true } else { false } }.count == 2
        }.compactMap { if case .message(let m) = $0 { AggregatorHarness.requestId(m.payload) } else { nil } }
        #expect(order == ["new", "old"], "the older result is still published")
        try h.produce(assessment("newer", camera: 9, time: "2025-10-20T10:30:06Z"), camera: 9)
        try await h.flush()
        try await h.waitUntilCommitted()
        #expect(AggregatorHarness.requestId(try #require(try await h.latest(9))) == "newer")
        try await h.stop()
        await subscriber.close()
    }

    @Test func missingDetectionIsPublishedAndMarked() async throws {
        let h = try await AggregatorHarness()
        try h.start()
        try h.produce(assessment("nodet", camera: 2, time: "2025-10-20T10:30:00Z", extra: #","llmLatency":1.5,"llmModel":"m""#), camera: 2)
        try await h.flush()
        try await h.waitUntilCommitted()
        let latest = try #require(try await h.latest(2))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(latest)) as? [String: Any])
        #expect(object["detectionMissing"] as? Bool == true)
        #expect((object["detectedObjects"] as? [Any])?.isEmpty == true)
        #expect((object["trafficGroups"] as? [Any])?.isEmpty == true)
        #expect(object["llmModel"] as? String == "m")
        #expect(h.service?.metrics.render().isEmpty == false)
        try await h.stop()
    }

    @Test func namespaceAndCanonicalCameraIds() async throws {
        let h = try await AggregatorHarness()
        try h.start()
        try h.produce(assessment("ns-1", camera: 0, time: "2025-10-20T10:30:00Z", level: "high").replacingOccurrences(of: #""cameraId":0"#, with: #""cameraId":"0042""#), camera: 42)
        try await h.flush()
        try await h.waitUntilCommitted()
        #expect(h.keys.namespace.hasSuffix(":") && !h.keys.namespace.isEmpty)
        #expect(try await h.redis.send(.exists(["\(h.keys.namespace)camera:42:latest", "\(h.keys.namespace)alerts:42"])) == 2)
        #expect(try await h.redis.send(.exists(["camera:42:latest", "\(h.keys.namespace)camera:0042:latest"])) == 0)
        let latest = String(decoding: try #require(try await h.latest(42)), as: UTF8.self)
        #expect(latest.contains(#""cameraId":42"#))
        try await h.stop()
    }

    @Test func alertListIsTrimmedToItsConfiguredLength() async throws {
        let h = try await AggregatorHarness(partitions: 1) { $0.alertListLength = 3 }
        try h.start()
        for i in 0..<5 { try h.produce(assessment("trim-\(i)", camera: 5, time: "2025-10-20T10:30:0\(i)Z", level: "high"), camera: 5) }
        try await h.flush()
        try await h.waitUntilCommitted()
        #expect(try await h.alerts(5) == ["trim-4", "trim-3", "trim-2"])
        try await h.stop()
    }

    @Test func noRedisModeConsumesValidatesAndCommits() async throws {
        let h = try await AggregatorHarness { $0.noRedis = true }
        try h.start()
        for i in 0..<20 { try h.produce(assessment("nr-\(i)", camera: 1, time: "2025-10-20T10:30:00Z"), camera: 1) }
        try h.produce("not json", camera: 1)
        try await h.flush()
        try await h.waitUntilCommitted()
        #expect(try await h.latest(1) == nil, "nothing is written to Redis")
        #expect(try await h.deadLetters(expected: 1).count == 1)
        try await h.stop()
    }

    @Test func everyPublishCarriesAGapFreePositionAndLandsInHistory() async throws {
        let h = try await AggregatorHarness { $0.historyLength = 1_000 }
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: h.redisServer.configuration)
        try await subscriber.psubscribe([h.keys.allCamerasPattern])
        try h.start()
        for i in 0..<30 { try h.produce(assessment("pos-\(i)", camera: i % 3, time: "2025-10-20T10:30:\(10 + i)Z", level: i % 5 == 0 ? "high" : "low"), camera: i % 3) }
        try await h.flush()
        try await h.waitUntilCommitted()

        var positions: [Int: [ResultPosition]] = [:]
        let received = try await collect(events, "30 results published") { events in
            events.filter { if case .message = $0 { true } else { false } }.count == 30
        }
        for case .message(let m) in received {
            let camera = try #require(h.keys.camera(fromChannel: m.channel))
            positions[camera, default: []].append(try #require(ResultPosition.parse(prefixOf: m.payload), "published payload starts with its position"))
            #expect(try JSONSerialization.jsonObject(with: Data(m.payload)) is [String: Any], "still one valid JSON object")
        }
        for camera in 0..<3 {
            let mine = try #require(positions[camera])
            #expect(mine.map(\.offset) == Array(1...10), "camera \(camera): offsets 1…10 in publish order")
            #expect(Set(mine.map(\.epoch)).count == 1)
            let history = try await h.redis.send(.xrange(h.keys.history(camera)))
            #expect(history.map(\.id) == (1...10).map { "\($0)-0" })
            let latest = try #require(try await h.latest(camera))
            #expect(ResultPosition.parse(prefixOf: latest) == mine.last, "latest carries the position of the result it holds")
        }
        // Losing the counter starts a new epoch and drops the old history.
        _ = try await h.redis.send(.del([h.keys.position(0)]))
        let oldEpoch = try #require(positions[0]?.first?.epoch)
        try h.produce(assessment("pos-new", camera: 0, time: "2025-10-20T10:31:00Z"), camera: 0)
        try await h.flush()
        try await h.waitUntilCommitted()
        let history = try await h.redis.send(.xrange(h.keys.history(0)))
        #expect(history.map(\.id) == ["1-0"])
        let freshLatest = try #require(try await h.latest(0))
        let fresh = try #require(ResultPosition.parse(prefixOf: freshLatest))
        #expect(fresh.offset == 1 && fresh.epoch != oldEpoch)
        try await h.stop()
        await subscriber.close()
    }
}

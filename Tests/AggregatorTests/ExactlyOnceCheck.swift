import Foundation
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation
import Synchronization

/// Every result a subscriber of all camera channels received, in order: a requestId published
/// twice to a subscriber that stayed connected shows up twice here. (Results published while it
/// was cut off, with Redis down, are missed; only repeats count.)
final class PublishedRecorder: Sendable {
    let subscriber: RedisSubscriber
    private let seen = Collector<String>()
    private let reader: Task<Void, Never>

    init(_ h: AggregatorHarness) async throws {
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: h.redisServer.configuration, bufferCapacity: 200_000)
        self.subscriber = subscriber
        let seen = seen
        reader = Task {
            for await event in events {
                if case .message(let message) = event { seen.append(AggregatorHarness.requestId(message.payload)) }
            }
        }
        try await subscriber.psubscribe([h.keys.allCamerasPattern])
    }

    var requestIds: [String] { seen.values }

    func close() async {
        await subscriber.close()
        reader.cancel()
    }
}

extension AggregatorHarness {
    /// The end state after a fault, exactly once: every result once in its camera's history, in
    /// produce order; no requestId published twice to `published`; every alert once; `latest`
    /// the newest; no `alerted:<requestId>` marker and at most one dedupe list per camera.
    /// Needs `historyLength` and `alertListLength` above the results per camera. Returns how
    /// many redeliveries the cameras skipped (tests that cause some expect them).
    @discardableResult
    func expectExactlyOnce(_ frames: [ResultSimulator.Frame], published: PublishedRecorder?, sourceLocation: SourceLocation = #_sourceLocation) async throws -> Int {
        let byCamera = Dictionary(grouping: frames, by: \.cameraId)
        var duplicated = 0
        for (camera, mine) in byCamera.sorted(by: { $0.key < $1.key }) {
            let history = try await redis.send(.xrange(keys.history(camera))).compactMap { $0["r"] }.map(Self.requestId)
            duplicated += history.count - Set(history).count
            #expect(history == mine.map(\.requestId), "camera \(camera): every result once, in produce order (\(history.count) entries for \(mine.count) results, \(history.count - Set(history).count) repeated)", sourceLocation: sourceLocation)
            let alerts = try await self.alerts(camera)
            #expect(alerts.count == Set(alerts).count && Set(alerts) == Set(mine.filter(\.isAlert).map(\.requestId)), "camera \(camera): every alert once", sourceLocation: sourceLocation)
            let latest = try #require(try await self.latest(camera), sourceLocation: sourceLocation)
            #expect(Self.requestId(latest) == mine.last?.requestId, "camera \(camera): latest is the newest", sourceLocation: sourceLocation)
        }
        if let published {
            let ids = published.requestIds
            var counts: [String: Int] = [:]
            for id in ids { counts[id, default: 0] += 1 }
            let repeated = counts.filter { $0.value > 1 }
            #expect(repeated.isEmpty, "\(repeated.count) requestIds published twice to a connected subscriber, e.g. \(repeated.keys.sorted().prefix(5))", sourceLocation: sourceLocation)
            #expect(!ids.isEmpty, "the subscriber received results", sourceLocation: sourceLocation)
        }
        let markers = try await scan(keys.legacyAlertMarker("*"))
        #expect(markers.isEmpty, "no marker key per alert: \(markers.prefix(3))", sourceLocation: sourceLocation)
        let dedupe = try await scan("\(keys.namespace)camera:*:alerted")
        #expect(dedupe.count <= byCamera.count, "at most one dedupe list per camera", sourceLocation: sourceLocation)
        var skipped = 0
        for camera in byCamera.keys {
            skipped += try await redis.send(.hget(keys.position(camera), field: "redelivered_skipped")).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
        }
        print("exactly-once check: \(frames.count) results over \(byCamera.count) cameras, \(skipped) redeliveries skipped, \(duplicated) history repeats, \(published?.requestIds.count ?? 0) received by the subscriber")
        return skipped
    }

    /// Every key matching `pattern`.
    func scan(_ pattern: String) async throws -> [String] {
        try await redis.keys(matching: pattern)
    }
}

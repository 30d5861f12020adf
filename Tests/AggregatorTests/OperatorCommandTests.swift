import Aggregator
import RedisClient
import Logging
import Foundation
import KafkaClient
import Testing
import TestSupport
import TrafficModel

/// `traffic-aggregator latest|alerts|stats|dlq|watch` against state written by a real run.
@Suite struct OperatorCommandTests {
    func cli(_ arguments: [String]) async throws -> CommandResult {
        try await runCommand(AggregatorProcessTests.binary, arguments, timeout: .seconds(60))
    }

    @Test func inspectStateAndDeadLetters() async throws {
        let h = try await AggregatorHarness(partitions: 2)
        try h.start()
        try h.produce(assessment("op-1", camera: 4, time: "2025-10-20T10:30:00Z", level: "high"), camera: 4)
        try h.produce(assessment("op-2", camera: 4, time: "2025-10-20T10:30:01Z"), camera: 4)
        try h.produce("{broken", camera: 4)
        try await h.flush()
        try await h.waitUntilCommitted()
        let redisArgs = ["--redis-url", h.redisServer.url, "--namespace", h.keys.namespace]
        let kafkaArgs = ["--kafka-bootstrap", h.kafka.bootstrapServers]

        let latest = try await cli(["latest", "4", "--json"] + redisArgs)
        #expect(latest.status == 0)
        #expect(latest.stdout.contains(#""requestId":"op-2""#))
        let human = try await cli(["latest", "4"] + redisArgs)
        #expect(human.stdout.contains("camera 4") && human.stdout.contains("risk=low"))
        let none = try await cli(["latest", "99"] + redisArgs)
        #expect(none.status == 1 && none.stdout.contains("no latest result"))
        let bad = try await cli(["latest", "x7"] + redisArgs)
        #expect(bad.status != 0 && bad.stderr.contains("not an integer"))

        let alerts = try await cli(["alerts", "4", "--json", "--limit", "5"] + redisArgs)
        let array = try JSONSerialization.jsonObject(with: Data(alerts.stdout.utf8)) as? [[String: Any]]
        #expect(array?.map { $0["requestId"] as? String } == ["op-1"])

        let stats = try await cli(["stats", "--json", "--topic", h.topic, "--group", h.configuration.group] + redisArgs + kafkaArgs)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any], "\(stats.stdout) \(stats.stderr)")
        #expect(object["camerasWithLatest"] as? [Int] == [4])
        #expect((object["alertListLengths"] as? [String: Int])?["4"] == 1)
        let lag = try #require(object["consumerLag"] as? [[String: Any]])
        #expect(lag.count == 2 && lag.allSatisfy { $0["lag"] as? Int == 0 })

        let list = try await cli(["dlq", "list", "--json", "--dlq-topic", h.dlqTopic] + kafkaArgs)
        let letter = try #require(try JSONSerialization.jsonObject(with: Data((list.stdout.split(separator: "\n").first ?? "").utf8)) as? [String: Any], "\(list.stdout) \(list.stderr)")
        #expect(letter["reason"] as? String == "malformed_json")
        #expect(letter["sourceTopic"] as? String == h.topic)

        // Replay re-injects the original bytes into the source topic (dead-lettered again here).
        let replay = try await cli(["dlq", "replay", "--dlq-topic", h.dlqTopic] + kafkaArgs)
        #expect(replay.stdout.contains("replayed 1 dead letters"), "\(replay.stderr)")
        try await h.waitUntilCommitted()
        #expect(try await h.deadLetters(expected: 2).count == 2)
        try await h.stop()

        // A group reading the topic from the start again (renamed, or its offsets reset): each
        // camera's stored offset tells the messages applied already; stats counts them.
        var again = h.configuration
        again.group = uniqueName("group-again")
        let rereader = try AggregatorService(configuration: again, bootstrap: h.kafka.bootstrapServers, logger: Logger(label: "test.aggregator.again"))
        let rereading = Task { try await rereader.run() }
        try await waitUntil("the re-read messages counted as skipped", timeout: .seconds(60)) {
            try await h.redis.send(.hget(h.keys.position(4), field: "redelivered_skipped")) == Array("2".utf8)
        }
        rereader.requestStop()
        try await rereading.value
        let counted = try await cli(["stats", "--json", "--min-replica-acks", "1"] + redisArgs)
        let totals = try #require(try JSONSerialization.jsonObject(with: Data(counted.stdout.utf8)) as? [String: Any], "\(counted.stdout) \(counted.stderr)")
        #expect(totals["redeliveredSkipped"] as? Int == 2 && totals["alertDedupeLists"] as? Int == 1 && totals["legacyAlertMarkers"] as? Int == 0, "\(totals)")
        let replication = try #require(totals["replication"] as? [String: Any])
        #expect(replication["role"] as? String == "master" && replication["shortfall"] as? String == "replicas-missing", "\(replication)")
        let text = try await cli(["stats", "--min-replica-acks", "1"] + redisArgs)
        #expect(text.stdout.contains("redelivered messages skipped (already applied): 2"), "\(text.stdout)")
        #expect(text.stdout.contains("required by --min-replica-acks 1: NOT MET: 0 of 1 required replicas acknowledged: no replica connected to the primary"), "\(text.stdout)")
        #expect(try await h.alerts(4) == ["op-1"], "no alert pushed twice")
    }

    @Test func watchTailsLiveResults() async throws {
        let h = try await AggregatorHarness(partitions: 1)
        try h.start()
        let watcher = Task { try await cli(["watch", "--camera", "8", "--count", "2", "--json", "--redis-url", h.redisServer.url, "--namespace", h.keys.namespace]) }
        let channel = h.keys.cameraChannel(8)
        try await waitUntil("watch subscribed", timeout: .seconds(30)) {
            try await h.redis.send(.raw(["PUBSUB", "NUMSUB", channel])) == .array([.bulk(Array(channel.utf8)), .integer(1)])
        }
        try h.produce(assessment("w-1", camera: 8, time: "2025-10-20T10:30:00Z"), camera: 8)
        try h.produce(assessment("w-2", camera: 8, time: "2025-10-20T10:30:01Z"), camera: 8)
        try await h.flush()
        let result = try await watcher.value
        #expect(result.status == 0)
        #expect(result.stdout.split(separator: "\n").count == 2)
        #expect(result.stdout.contains(#""requestId":"w-1""#) && result.stdout.contains(#""requestId":"w-2""#))
        try await h.stop()
    }
}

/// The operator commands and the simulator on a `redis-cluster://` URL (issue 22): keys routed
/// to their slot's primary, scans and server figures over every primary.
@Suite struct ClusterOperatorCommandTests {
    func cli(_ tool: String, _ arguments: [String]) async throws -> CommandResult {
        try await runCommand(URL(fileURLWithPath: AggregatorProcessTests.binary).deletingLastPathComponent().appendingPathComponent(tool).path, arguments, timeout: .seconds(60))
    }

    @Test func latestAlertsStatsAndTheSimulatorWorkOnACluster() async throws {
        let cluster = try await RedisCluster()
        let redis = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let keys = KeySchema(namespace: uniqueName("ops") + ":", hashTagged: true)
        let args = ["--redis-url", cluster.url, "--namespace", keys.namespace]
        // State as the aggregator would leave it, on cameras of every primary.
        let cameras = Array(0..<12)
        for camera in cameras {
            _ = try await redis.send(.setex(keys.latest(camera), seconds: 300, assessment("c\(camera)", camera: camera, time: "2025-10-20T10:30:00Z")), routedBy: keys.latest(camera))
            _ = try await redis.send(.lpush(keys.alerts(camera), [Array(assessment("a\(camera)", camera: camera, time: "2025-10-20T10:30:00Z", level: "high").utf8)]), routedBy: keys.alerts(camera))
        }
        #expect(Set(cameras.compactMap { redis.primary(forSlot: HashSlot.of(keys.latest($0)))?.port }).count == 3, "the cameras live on every primary")

        let latest = try await cli("traffic-aggregator", ["latest", "7", "--json"] + args)
        #expect(latest.status == 0 && latest.stdout.contains(#""requestId":"c7""#), "\(latest.stdout) \(latest.stderr)")
        let alerts = try await cli("traffic-aggregator", ["alerts", "11", "--json"] + args)
        #expect(alerts.status == 0 && alerts.stdout.contains(#""requestId":"a11""#), "\(alerts.stdout) \(alerts.stderr)")
        let stats = try await cli("traffic-aggregator", ["stats", "--json"] + args)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as? [String: Any], "\(stats.stdout) \(stats.stderr)")
        #expect(object["camerasWithLatest"] as? [Int] == cameras, "the scan covers every primary")
        #expect((object["alertListLengths"] as? [String: Int])?.count == 12)
        #expect((object["servers"] as? [[String: Any]])?.count == 3, "memory and replicas of each primary")
        // watch finds every camera with a position on any primary and tails its shard channel.
        for camera in cameras { _ = try await redis.send(.hset(keys.position(camera), [("offset", "1")]), routedBy: keys.position(camera)) }
        // Its scan runs at start only here (the next in an hour): camera 40, new, comes through the
        // aggregator's announcement.
        let watcher = Task { try await cli("traffic-aggregator", ["watch", "--count", "3", "--json", "--discovery-seconds", "3600"] + args) }
        func subscribed(_ channels: [String]) async throws -> Bool {
            for channel in channels {
                let reply = try await redis.send(.raw(["PUBSUB", "SHARDNUMSUB", channel]), routedBy: channel)
                guard case .array(let parts) = reply, parts.count == 2, parts[1] == .integer(1) else { return false }
            }
            return true
        }
        let channels = [keys.cameraChannel(2), keys.cameraChannel(9)]
        try await waitUntil("watch subscribed the cameras' shard channels", timeout: .seconds(30)) { try await subscribed(channels) }
        for (index, channel) in channels.enumerated() {
            _ = try await redis.send(.spublish(channel, Array(#"{"requestId":"w\#(index)"}"#.utf8)), routedBy: channel)
        }
        try await waitUntil("watch follows an announced camera", timeout: .seconds(30)) {
            _ = try await redis.send(.publish(keys.camerasAnnounced, Array("40".utf8)), routedBy: keys.camerasAnnounced)
            return try await subscribed([keys.cameraChannel(40)])
        }
        _ = try await redis.send(.spublish(keys.cameraChannel(40), Array(#"{"requestId":"w2"}"#.utf8)), routedBy: keys.cameraChannel(40))
        let watch = try await watcher.value
        #expect(watch.status == 0 && ["w0", "w1", "w2"].allSatisfy { watch.stdout.contains(#""requestId":"\#($0)""#) }, "\(watch.stdout) \(watch.stderr)")
        let braces = try await cli("traffic-aggregator", ["latest", "7", "--redis-url", cluster.url, "--namespace", "{ops}:"])
        #expect(braces.status != 0 && braces.stderr.contains("contains '{' or '}'"), "\(braces.stderr)")

        // The simulator writes each detection to its slot's primary.
        let kafka = try await EmbeddedKafka.start(topics: [.init("sim-cluster", partitions: 1)])
        let sim = try await cli("traffic-sim", ["--kafka-bootstrap", kafka.bootstrapServers, "--topic", "sim-cluster", "--rate", "500", "--count", "60", "--cameras", "6", "--missing-detection-ratio", "0"] + args)
        #expect(sim.status == 0, "\(sim.stderr)")
        let detections = try await redis.keys(matching: keys.detection("*"))
        #expect(detections.count == 60, "\(detections.count) detections")
        #expect(Set(detections.compactMap { redis.primary(forSlot: HashSlot.of($0))?.port }).count == 3, "spread over every primary")
        await redis.close()
    }
}

import KafkaClient
import RedisClient
import Testing
import TrafficModel
@testable import Aggregator

/// The pure core, without servers.
@Suite struct WritePlannerTests {
    let planner = WritePlanner(keys: KeySchema(namespace: "t:"), alertRule: AlertRule(minimumLevel: .high))

    func message(_ id: String, camera: Int, time: String, level: String = "low", dangerous: Bool = false) -> KafkaMessage {
        let json = #"{"requestId":"\#(id)","cameraId":\#(camera),"timestamp":"\#(time)","riskAssessment":{"maxRiskLevel":"\#(level)","hasDangerousDriving":\#(dangerous)}}"#
        return KafkaMessage(topic: "in", partition: 0, offset: 0, key: nil, value: Array(json.utf8))
    }

    @Test func plansPublishesInOrderLatestPerCameraAndAlerts() {
        let batch = [
            message("a", camera: 1, time: "2025-01-01T00:00:02Z"),
            message("b", camera: 2, time: "2025-01-01T00:00:01Z", level: "critical"),
            message("c", camera: 1, time: "2025-01-01T00:00:01Z", dangerous: true), // older than a
            message("d", camera: 1, time: "2025-01-01T00:00:03Z"),
        ]
        let (valid, _, dead) = planner.decode(batch)
        #expect(dead.isEmpty)
        let plan = planner.plan(valid, detections: [nil, Array(#"{"detectedObjects":[1]}"#.utf8), nil, nil])
        #expect(plan.publishes.map(\.channel) == ["t:camera:1", "t:camera:2", "t:camera:1", "t:camera:1"])
        #expect(plan.latest.map(\.camera) == [1, 2])
        #expect(plan.latest[0].timestampMilliseconds == RFC3339.milliseconds("2025-01-01T00:00:03Z"))
        #expect(String(decoding: plan.latest[0].payload, as: UTF8.self).contains(#""requestId":"d""#))
        #expect(plan.latest[0].timestampKey == "t:camera:1:latest_ts")
        #expect(plan.alerts.map(\.requestId) == ["b", "c"])
        #expect(plan.alerts.map(\.listKey) == ["t:alerts:2", "t:alerts:1"])
        #expect(plan.alerts[0].alertedKey == "t:camera:2:alerted" && plan.alerts[0].legacyMarkerKey == "t:alerted:b")
        #expect(plan.detectionMissing == 3)
    }

    @Test func separatesDeadLetters() {
        let batch = [message("ok", camera: 1, time: "2025-01-01T00:00:00Z"), KafkaMessage(topic: "in", partition: 3, offset: 9, key: nil, value: Array("{".utf8))]
        let (valid, _, dead) = planner.decode(batch)
        #expect(valid.map(\.requestId) == ["ok"])
        #expect(dead.map(\.rejection.reason) == [.malformedJSON])
        #expect(dead[0].source.position == "in[3]@9")
    }

    /// The text of each command's arguments.
    func texts(_ commands: [RedisArguments]) -> [[String]] {
        commands.map { $0.parts.map { String(decoding: $0, as: UTF8.self) } }
    }

    @Test func transactionStartsAnEpochForACameraWithoutCounter() throws {
        let (valid, _, _) = planner.decode([message("x", camera: 4, time: "2025-01-01T00:00:00Z", level: "high")])
        let plan = planner.plan(valid, detections: [nil])
        var settings = WriteTransaction.Settings()
        settings.alertDedupeWindow = 60
        settings.historyLength = 500
        let writer = WriteTransaction(settings: settings)
        #expect(writer.watchedKeys(plan) == ["t:camera:4:position", "t:camera:4:latest_ts"])
        #expect(texts(writer.reads(plan).commands) == [["HMGET", "t:camera:4:position", "offset", "epoch", "kafka_partition", "kafka_offset", "legacy_markers", "kafka_topic"], ["MGET", "t:camera:4:latest_ts"], ["LPOS", "t:camera:4:alerted", "x"], ["TIME"]])
        #expect(writer.watchedKeys(plan, legacyChecks: [0]) == ["t:camera:4:position", "t:camera:4:latest_ts", "t:alerted:x"])
        #expect(texts(writer.reads(plan, legacyChecks: [0]).commands).dropLast(1).last == ["MGET", "t:alerted:x"], "an upgrade's legacy markers, read only when asked for")
        let fresh: [RedisReply] = [.array([.null, .null, .null, .null, .null, .null]), .array([.null]), .null, .array([.bulk(Array("1760000000".utf8)), .bulk(Array("42".utf8))])]
        let (commands, outcome) = try writer.commands(for: plan, readReplies: fresh)
        let lines = texts(commands)
        let body = #"{"position":{"offset":1,"epoch":"1760000000000042"},"# + String(decoding: plan.publishes[0].payload.dropFirst(), as: UTF8.self)
        let ts = String(RFC3339.milliseconds("2025-01-01T00:00:00Z")!)
        #expect(lines == [
            ["DEL", "t:camera:4:history"],
            ["HSET", "t:camera:4:position", "offset", "1", "epoch", "1760000000000042"],
            ["XADD", "t:camera:4:history", "MAXLEN", "~", "500", "1-0", "r", body],
            ["PUBLISH", "t:camera:4", body],
            ["SETEX", "t:camera:4:latest", "300", body],
            ["SETEX", "t:camera:4:latest_ts", "300", ts],
            ["LPUSH", "t:alerts:4", body],
            ["LPUSH", "t:camera:4:alerted", "x"],
            ["LTRIM", "t:alerts:4", "0", "99"],
            ["LTRIM", "t:camera:4:alerted", "0", "59"],
        ])
        #expect(outcome == WriteTransaction.Outcome(published: 1, latestWritten: 1, alertsPushed: 1))
        #expect(ResultPosition.parse(prefixOf: Array(body.utf8)) == ResultPosition(offset: 1, epoch: "1760000000000042"))
    }

    @Test func transactionContinuesTheCounterAndRespectsStoredState() throws {
        let (valid, _, _) = planner.decode([
            message("p", camera: 1, time: "2025-01-01T00:00:01Z", level: "high"),
            message("q", camera: 1, time: "2025-01-01T00:00:02Z", level: "high"),
            message("p", camera: 1, time: "2025-01-01T00:00:01Z", level: "high"), // duplicate delivery in one batch
        ])
        let plan = planner.plan(valid, detections: [nil, nil, nil])
        let writer = WriteTransaction()
        let newer = String(RFC3339.milliseconds("2025-01-01T00:00:05Z")!)
        let stored: [RedisReply] = [
            .array([.bulk(Array("7".utf8)), .bulk(Array("e1".utf8)), .null, .null, .null, .null]), // no Kafka pair stored (written before the rule)
            .array([.bulk(Array(newer.utf8))]),
            .null, .integer(4), .null, // q already alerted (in camera 1's alerted list)
            .array([.bulk(Array("1".utf8)), .bulk(Array("2".utf8))]),
        ]
        let (commands, outcome) = try writer.commands(for: plan, readReplies: stored)
        let lines = texts(commands)
        #expect(lines[0] == ["HSET", "t:camera:1:position", "offset", "10", "epoch", "e1"], "no DEL: the epoch goes on")
        #expect(lines.filter { $0[0] == "XADD" }.map { $0[5] } == ["8-0", "9-0", "10-0"])
        #expect(lines.filter { $0[0] == "PUBLISH" }.map { ResultPosition.parse(prefixOf: Array($0[2].utf8))?.offset } == [8, 9, 10])
        #expect(!lines.contains { $0[0] == "SETEX" }, "the stored latest is newer")
        #expect(lines.filter { $0[0] == "LPUSH" && $0[1] == "t:alerts:1" }.count == 1, "p once, q not at all")
        #expect(lines.filter { $0[0] == "LPUSH" && $0[1] == "t:camera:1:alerted" }.map { $0[2] } == ["p"])
        #expect(!lines.contains { $0[0] == "SET" }, "no marker key per alert")
        #expect(outcome == WriteTransaction.Outcome(published: 3, latestWritten: 0, latestSkipped: 1, alertsPushed: 1, alertsDeduplicated: 2))
    }

    @Test func transactionStartsOverWhenTheStoredCounterIsNotSane() throws {
        let (valid, _, _) = planner.decode([message("x", camera: 4, time: "2025-01-01T00:00:00Z")])
        let plan = planner.plan(valid, detections: [nil])
        let time: RedisReply = .array([.bulk(Array("1760000000".utf8)), .bulk(Array("7".utf8))])
        for (offset, epoch) in [("12", #"e"1"#), ("0", "e1"), ("x", "e1"), ("12", "")] {
            let reads: [RedisReply] = [.array([.bulk(Array(offset.utf8)), .bulk(Array(epoch.utf8)), .null, .null, .null, .null]), .array([.null]), time]
            let lines = texts(try WriteTransaction().commands(for: plan, readReplies: reads).commands)
            #expect(lines[0] == ["DEL", "t:camera:4:history"], "offset \(offset), epoch \(epoch)")
            #expect(lines[1] == ["HSET", "t:camera:4:position", "offset", "1", "epoch", "1760000000000007"])
        }
    }

    @Test func transactionRejectsErrorAndMisshapedReads() {
        let (valid, _, _) = planner.decode([message("x", camera: 4, time: "2025-01-01T00:00:00Z")])
        let plan = planner.plan(valid, detections: [nil])
        let writer = WriteTransaction()
        #expect(throws: RedisError.self) {
            _ = try writer.commands(for: plan, readReplies: [.error("WRONGTYPE Operation against a key holding the wrong kind of value"), .array([.null]), .array([])])
        }
        #expect(throws: RedisError.self) { _ = try writer.commands(for: plan, readReplies: []) }
        let time: RedisReply = .array([.bulk(Array("1760000000".utf8)), .bulk(Array("7".utf8))])
        #expect(throws: RedisError.self, "a position reply of the wrong length is no state to write from") {
            _ = try writer.commands(for: plan, readReplies: [.array([.null, .null]), .array([.null]), time])
        }
    }
}

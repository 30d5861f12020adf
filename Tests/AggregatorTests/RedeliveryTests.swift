import Foundation
import Logging
import RedisClient
import KafkaClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation

/// The skip rule alone: a message against its camera's stored Kafka pair.
@Suite struct AppliedOffsetRuleTests {
    let stored = AppliedOffset(partition: 3, offset: 100)

    @Test func theSamePartitionAtOrBelowTheStoredOffsetIsARedelivery() {
        #expect(AppliedOffset.verdict(for: MessageOrigin(partition: 3, offset: 99, highWatermark: 500), stored: stored) == .skip, "lower")
        #expect(AppliedOffset.verdict(for: MessageOrigin(partition: 3, offset: 100, highWatermark: 500), stored: stored) == .skip, "equal")
        #expect(AppliedOffset.verdict(for: MessageOrigin(partition: 3, offset: 101, highWatermark: 500), stored: stored) == .apply, "higher")
        #expect(AppliedOffset.verdict(for: MessageOrigin(partition: 3, offset: 50), stored: stored) == .skip, "end unknown: still a redelivery")
    }

    @Test func anotherPartitionOrNothingStoredIsApplied() {
        #expect(AppliedOffset.verdict(for: MessageOrigin(partition: 4, offset: 1, highWatermark: 10), stored: stored) == .apply, "another partition")
        #expect(AppliedOffset.verdict(for: MessageOrigin(partition: 3, offset: 1, highWatermark: 10), stored: nil) == .apply, "nothing stored (written before the rule)")
    }

    @Test func aStoredOffsetAtOrPastThePartitionsEndMeansARecreatedTopic() {
        // The embedded broker starts at offset 0 on every start: offset 5 of a partition that
        // ends at 10 can be no redelivery of the stored offset 100.
        #expect(AppliedOffset.verdict(for: MessageOrigin(partition: 3, offset: 5, highWatermark: 10), stored: stored) == .applyAfterReset)
        #expect(AppliedOffset.verdict(for: MessageOrigin(partition: 3, offset: 5, highWatermark: 100), stored: stored) == .applyAfterReset, "end equal to the stored offset")
        #expect(AppliedOffset.verdict(for: MessageOrigin(partition: 3, offset: 5, highWatermark: 101), stored: stored) == .skip, "end past it: a redelivery")
    }

    @Test func thePairIsReadOnlyWhenBothFieldsAreNumbers() {
        #expect(AppliedOffset.parse(partition: Array("2".utf8), offset: Array("41".utf8)) == AppliedOffset(partition: 2, offset: 41))
        #expect(AppliedOffset.parse(partition: nil, offset: Array("41".utf8)) == nil)
        #expect(AppliedOffset.parse(partition: Array("x".utf8), offset: Array("41".utf8)) == nil)
    }
}

/// Plans of `RedeliveryTests.Setup` without a server, for checks of the commands alone.
struct OfflineSetup {
    let planner = WritePlanner(keys: KeySchema(namespace: "offline:"), alertRule: AlertRule(minimumLevel: .high))

    func plan(_ offsets: ClosedRange<Int64>, partition: Int32 = 0, highWatermark: Int64? = 1_000) throws -> WritePlan {
        try RedeliveryTests.Setup.plan(offsets, planner: planner, partition: partition, highWatermark: highWatermark)
    }
}

/// The write transaction against a real redis-server: a message applied once, however often
/// it is written (a killed member's successor, a batch written again after a lost reply, two
/// members holding the same messages around a rebalance).
@Suite struct RedeliveryTests {
    struct Setup {
        let server: RedisServer
        let redis: RedisClient
        let keys: KeySchema
        let planner: WritePlanner

        /// Plans alone, without a server.
        static func offline() -> OfflineSetup { OfflineSetup() }

        init() async throws {
            server = try await RedisServer()
            redis = try await RedisClient.connect(configuration: server.configuration)
            keys = KeySchema(namespace: uniqueName("redeliver") + ":")
            planner = WritePlanner(keys: keys, alertRule: AlertRule(minimumLevel: .high))
        }

        /// Results `offsets` of camera 7 (every third an alert), as messages of `partition`.
        func plan(_ offsets: ClosedRange<Int64>, partition: Int32 = 0, highWatermark: Int64? = 1_000) throws -> WritePlan {
            try Self.plan(offsets, planner: planner, partition: partition, highWatermark: highWatermark)
        }

        static func plan(_ offsets: ClosedRange<Int64>, planner: WritePlanner, partition: Int32, highWatermark: Int64?) throws -> WritePlan {
            var valid: [AssessmentMessage] = []
            for offset in offsets {
                let level = offset % 3 == 0 ? "high" : "low"
                let json = #"{"requestId":"p\#(partition)-\#(offset)","cameraId":7,"timestamp":"\#(ResultSimulator.rfc3339(1_760_000_000_000 + offset * 1000))","riskAssessment":{"maxRiskLevel":"\#(level)","hasDangerousDriving":false}}"#
                valid.append(try AssessmentMessage(validating: Array(json.utf8)))
            }
            return planner.plan(valid, detections: valid.map { _ in nil },
                                origins: offsets.map { MessageOrigin(topic: "results", partition: partition, offset: $0, highWatermark: highWatermark) })
        }

        /// The requestIds of camera 7's history, in order.
        func history() async throws -> [String] {
            try await redis.send(.xrange(keys.history(7))).compactMap { entry in
                (try? JSONSerialization.jsonObject(with: Data(entry.fields.first?.value ?? [])) as? [String: Any])?["requestId"] as? String // try?: an entry that is no result fails the expectation on it
            }
        }

        func alerts() async throws -> [String] {
            try await redis.send(.lrange(keys.alerts(7), start: 0, stop: -1)).compactMap {
                (try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any])?["requestId"] as? String // try?: as above
            }
        }

        func latest() async throws -> String? {
            try await redis.send(.get(keys.latest(7))).flatMap { (try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any])?["requestId"] as? String } // try?: as above
        }
    }

    @Test func aBatchWrittenAgainChangesNothing() async throws {
        let s = try await Setup()
        let writer = WriteTransaction()
        let first = try await writer.apply(try s.plan(1...10), on: s.redis)
        #expect(first.published == 10 && first.redeliveredSkipped == 0)
        let again = try await writer.apply(try s.plan(1...10), on: s.redis)
        #expect(again.published == 0 && again.redeliveredSkipped == 10 && again.alertsPushed == 0 && again.latestWritten == 0, "\(again)")
        #expect(try await s.history() == (1...10).map { "p0-\($0)" })
        #expect(try await s.alerts().count == 3)
        #expect(try await s.latest() == "p0-10")
        let pair = try await s.redis.send(.hmget(s.keys.position(7), fields: ["offset", "kafka_partition", "kafka_offset"]))
        #expect(pair == [Array("10".utf8), Array("0".utf8), Array("10".utf8)], "the counter and the pair of the last applied message")
    }

    @Test func anOverlappingBatchAppliesOnlyItsNewMessages() async throws {
        let s = try await Setup()
        let writer = WriteTransaction()
        _ = try await writer.apply(try s.plan(1...6), on: s.redis)
        // The successor of a member killed after writing 1…6 but before committing them reads 4…12.
        let overlap = try await writer.apply(try s.plan(4...12), on: s.redis)
        #expect(overlap.published == 6 && overlap.redeliveredSkipped == 3, "\(overlap)")
        #expect(try await s.history() == (1...12).map { "p0-\($0)" }, "every result once, in produce order")
        #expect(try await s.alerts().sorted() == ["p0-12", "p0-3", "p0-6", "p0-9"].sorted(), "every alert once")
        #expect(try await s.latest() == "p0-12")
    }

    @Test func anotherPartitionOrARecreatedTopicIsApplied() async throws {
        let s = try await Setup()
        let writer = WriteTransaction()
        _ = try await writer.apply(try s.plan(1...5), on: s.redis)
        // The topic was recreated: its partition ends at 3 now, below the stored offset 5.
        let recreated = try await writer.apply(try s.plan(1...2, highWatermark: 3), on: s.redis)
        #expect(recreated.published == 2 && recreated.offsetResets == 1 && recreated.redeliveredSkipped == 0, "\(recreated): the first message resets the pair, the second follows it")
        // Messages of another partition replace the pair.
        let moved = try await writer.apply(try s.plan(1...2, partition: 1), on: s.redis)
        #expect(moved.published == 2 && moved.redeliveredSkipped == 0)
        #expect(try await s.redis.send(.hmget(s.keys.position(7), fields: ["kafka_partition", "kafka_offset"])) == [Array("1".utf8), Array("2".utf8)])
        #expect(try await s.history().count == 9)
    }

    /// Two members holding the same messages around a rebalance, writing at the same time: the
    /// WATCH on the camera's position makes one of them read again, and then it skips what the
    /// other applied. Each message is applied once, never dropped.
    @Test func twoWritersRacingOnTheSameMessagesApplyEachOnce() async throws {
        let s = try await Setup()
        var writer = WriteTransaction()
        writer.maximumAttempts = 10_000
        let plans = try stride(from: Int64(1), through: 200, by: 10).map { try s.plan($0...($0 + 9)) }
        let clients = [try await RedisClient.connect(configuration: s.server.configuration), try await RedisClient.connect(configuration: s.server.configuration)]
        let written = try await withThrowingTaskGroup(of: (published: Int, skipped: Int).self) { group in
            for client in clients {
                let mine = writer
                group.addTask {
                    var totals = (published: 0, skipped: 0)
                    for plan in plans {
                        let outcome = try await mine.apply(plan, on: client)
                        totals.published += outcome.published
                        totals.skipped += outcome.redeliveredSkipped
                    }
                    return totals
                }
            }
            var all: [(published: Int, skipped: Int)] = []
            for try await totals in group { all.append(totals) }
            return all
        }
        #expect(written.map(\.published).reduce(0, +) == 200 && written.map(\.skipped).reduce(0, +) == 200, "\(written)")
        #expect(try await s.history() == (1...200).map { "p0-\($0)" }, "every result once, in produce order")
        let alerts = try await s.alerts()
        #expect(Set(alerts).count == 66 && alerts.count == 66, "every alert once")
    }

    /// A requestId that reaches Kafka twice as two messages (a producer retry without
    /// idempotence): both are applied (two offsets), one alert is pushed while the first is among
    /// the camera's last `alertDedupeWindow` alerts, and the camera's list of them stays that long.
    @Test func aRequestIdProducedTwiceAlertsOnceWithinTheWindow() async throws {
        let s = try await Setup()
        var settings = WriteTransaction.Settings()
        settings.alertDedupeWindow = 3
        let writer = WriteTransaction(settings: settings)
        func alert(_ id: String, offset: Int64) throws -> WritePlan {
            let json = #"{"requestId":"\#(id)","cameraId":7,"timestamp":"\#(ResultSimulator.rfc3339(1_760_000_000_000 + offset * 1000))","riskAssessment":{"maxRiskLevel":"high","hasDangerousDriving":false}}"#
            let message = try AssessmentMessage(validating: Array(json.utf8))
            return s.planner.plan([message], detections: [nil], origins: [MessageOrigin(partition: 0, offset: offset, highWatermark: 1_000)])
        }
        _ = try await writer.apply(try alert("dup", offset: 1), on: s.redis)
        let again = try await writer.apply(try alert("dup", offset: 2), on: s.redis)
        #expect(again.published == 1 && again.alertsPushed == 0 && again.alertsDeduplicated == 1, "\(again)")
        for (index, id) in ["a", "b", "c"].enumerated() { _ = try await writer.apply(try alert(id, offset: Int64(3 + index)), on: s.redis) }
        // "dup" has left the window of the last three alerts: the same requestId alerts again.
        let late = try await writer.apply(try alert("dup", offset: 6), on: s.redis)
        #expect(late.alertsPushed == 1)
        #expect(try await s.alerts() == ["dup", "c", "b", "a", "dup"])
        #expect(try await s.redis.send(.lrange(s.keys.alerted(camera: 7), start: 0, stop: -1)).map { String(decoding: $0, as: UTF8.self) } == ["dup", "c", "b"], "bounded per camera")
        #expect(try await s.history() == ["dup", "dup", "a", "b", "c", "dup"], "two messages, two results: only the alert is deduplicated")
    }

    /// Upgrade in place: state written by a version before the applied offset (a position hash
    /// without the Kafka pair, an `alerted:<requestId>` marker per alert, no `alerted` list), then
    /// the messages since the last commit redelivered to this version.
    @Test func anUpgradeFromStateWithoutOffsetsAlertsNoRedeliveryTwice() async throws {
        let s = try await Setup()
        let writer = WriteTransaction()
        var old = try s.plan(1...6)
        for index in old.publishes.indices { old.publishes[index].origin = nil }
        _ = try await writer.apply(old, on: s.redis)
        _ = try await s.redis.send(.del([s.keys.alerted(camera: 7)]))
        for id in ["p0-3", "p0-6"] { _ = try await s.redis.send(.set(s.keys.legacyAlertMarker(id), "1", expiry: .seconds(3_600))) }
        #expect(try await s.redis.send(.hmget(s.keys.position(7), fields: ["kafka_partition", "kafka_offset"])) == [nil, nil])

        // 4…9 redelivered: 4…6 were applied by the old version, which cannot be told from the
        // state it left, so they are applied again, but p0-6, marked, does not alert twice.
        let upgraded = try await writer.apply(try s.plan(4...9), on: s.redis)
        #expect(upgraded.published == 6 && upgraded.alertsPushed == 1 && upgraded.alertsDeduplicated == 1, "\(upgraded)")
        #expect(try await s.alerts() == ["p0-9", "p0-6", "p0-3"])
        #expect(try await s.redis.send(.hmget(s.keys.position(7), fields: ["kafka_partition", "kafka_offset"])) == [Array("0".utf8), Array("9".utf8)])
        // From here on the offset decides: the same messages again change nothing.
        let again = try await writer.apply(try s.plan(4...9), on: s.redis)
        #expect(again.published == 0 && again.redeliveredSkipped == 6 && again.alertsPushed == 0, "\(again)")
        // The old markers are left to expire; no new one is written.
        let markers = try await s.redis.keys(matching: s.keys.legacyAlertMarker("*")).sorted()
        #expect(markers == ["p0-3", "p0-6"].map(s.keys.legacyAlertMarker))
        let ttl = try await s.redis.send(.raw(["TTL", s.keys.legacyAlertMarker("p0-6")]))
        guard case .integer(let seconds) = ttl else { Issue.record("TTL reply \(ttl)"); return }
        #expect((1...3_600).contains(seconds), "the marker keeps its own expiry")
        #expect(try await s.redis.send(.hget(s.keys.position(7), field: "redelivered_skipped")) == Array("6".utf8), "counted where stats finds it")
    }
}

extension RedeliveryTests {
    /// A message twice in one batch (re-fetched after a rebalance while the batch was polled) is
    /// applied once: each applied message moves the camera's pair on.
    @Test func aMessageTwiceInOneBatchIsAppliedOnce() async throws {
        let s = try await Setup()
        var plan = try s.plan(1...6)
        let order: [Int64] = [1, 2, 3, 2, 3, 4] // the origins of the six results, as polled
        for (index, offset) in order.enumerated() { plan.publishes[index].origin?.offset = offset }
        let outcome = try await WriteTransaction().apply(plan, on: s.redis)
        #expect(outcome.published == 4 && outcome.redeliveredSkipped == 2, "\(outcome)")
    }

    /// A stored offset at or past the consumer's cached watermark is taken for a recreated topic
    /// only once the broker confirms the partition ends there: another member may have read
    /// further than this consumer's last fetch showed (a batch retried through an outage after
    /// its partition moved).
    @Test func aResetIsConfirmedWithTheBrokerBeforeItIsBelieved() async throws {
        let s = try await Setup()
        let writer = WriteTransaction()
        _ = try await writer.apply(try s.plan(1...10), on: s.redis)
        let asked = Collector<KafkaTopicPartition>()
        // The cached watermark (8) is stale: the broker says the partition ends at 11.
        let stale = try await writer.apply(try s.plan(5...6, highWatermark: 8), on: s.redis, partitionEnd: { partition in
            asked.append(partition)
            return 11
        })
        #expect(stale.published == 0 && stale.redeliveredSkipped == 2 && stale.offsetResets == 0, "\(stale)")
        #expect(asked.values.map(\.partition) == [0], "asked once for the partition")
        // The broker confirms the partition ends at 3: the topic was recreated.
        let recreated = try await writer.apply(try s.plan(1...2, highWatermark: 3), on: s.redis, partitionEnd: { _ in 3 })
        #expect(recreated.published == 2 && recreated.offsetResets == 1, "\(recreated): the first message resets the pair, the second follows it")
        // The broker cannot be asked: nothing is applied, the write is put off (retried).
        do {
            _ = try await writer.apply(try s.plan(1...1, highWatermark: 1), on: s.redis, partitionEnd: { _ in nil })
            Issue.record("applied on the strength of a cached watermark alone")
        } catch let error as RedisError {
            #expect(error.kind == .deferred && error.message.contains("could not be asked of the broker"), "\(error)")
        }
        #expect(try await s.history().count == 12)
    }

    /// A broker end asked against one stored offset says nothing about another: when a read
    /// after the answer shows the camera's stored offset moved on (another writer), it is asked
    /// again rather than a reset believed.
    @Test func aConfirmedEndHoldsOnlyForTheStoredOffsetItWasAskedFor() throws {
        let s = Setup.offline()
        var plan = try s.plan(5...5, highWatermark: 103)
        plan.publishes[0].origin?.endConfirmedFor = 100 // asked when the stored offset was 100
        let stored: [RedisReply] = [
            .array([.bulk(Array("40".utf8)), .bulk(Array("e1".utf8)), .bulk(Array("0".utf8)), .bulk(Array("104".utf8)), .null, .bulk(Array("results".utf8))]),
            .array([.null]), .array([.bulk(Array("1760000000".utf8)), .bulk(Array("1".utf8))]),
        ]
        let moved = try WriteTransaction().commands(for: plan, readReplies: stored, confirmsResets: true)
        #expect(moved.commands.isEmpty && moved.value.endsToConfirm == [0: 104], "asked again for the stored offset 104")
        plan.publishes[0].origin?.endConfirmedFor = 104
        plan.publishes[0].origin?.highWatermark = 110
        let redelivery = try WriteTransaction().commands(for: plan, readReplies: stored, confirmsResets: true)
        #expect(redelivery.value.redeliveredSkipped == 1 && redelivery.value.offsetResets == 0, "the partition goes on past 104: a redelivery")
    }

    /// A redelivered result writes nothing at all: not its frame image either.
    @Test func aRedeliveredResultWritesNoFrame() async throws {
        let s = try await Setup()
        let writer = WriteTransaction()
        let json = #"{"requestId":"framed","cameraId":7,"timestamp":"\#(ResultSimulator.rfc3339(1_760_000_000_000))","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}}"#
        let message = try AssessmentMessage(validating: Array(json.utf8))
        let detection = Array(#"{"cameraId":7,"detectedObjects":[],"frameImage":"aGVsbG8="}"#.utf8)
        let plan = s.planner.plan([message], detections: [detection], origins: [MessageOrigin(topic: "results", partition: 0, offset: 1, highWatermark: 10)])
        #expect(plan.frames.count == 1)
        _ = try await writer.apply(plan, on: s.redis)
        let frameKey = s.keys.frame(camera: 7, requestId: "framed")
        #expect(try await s.redis.send(.get(frameKey)) == Array("hello".utf8))
        _ = try await s.redis.send(.del([frameKey]))
        let again = try await writer.apply(plan, on: s.redis)
        #expect(again.redeliveredSkipped == 1)
        #expect(try await s.redis.send(.get(frameKey)) == nil, "the frame of a skipped result is not written again")
    }

    /// Messages of another topic (`--topic` changed) are no redeliveries of the stored one's.
    @Test func anotherTopicIsApplied() async throws {
        let s = try await Setup()
        let writer = WriteTransaction()
        _ = try await writer.apply(try s.plan(1...5), on: s.redis)
        var other = try s.plan(1...2)
        for index in other.publishes.indices { other.publishes[index].origin?.topic = "results-v2" }
        let outcome = try await writer.apply(other, on: s.redis)
        #expect(outcome.published == 2 && outcome.redeliveredSkipped == 0, "\(outcome)")
        #expect(try await s.redis.send(.hget(s.keys.position(7), field: "kafka_topic")) == Array("results-v2".utf8))
    }

    /// The redelivered messages of an upgrade arrive over several batches: the first one stores
    /// the camera's offset, and later ones still hold messages the old version applied. Old
    /// markers are checked until an alert without one shows that the old version's messages are
    /// behind.
    @Test func anUpgradesRedeliveriesOverSeveralBatchesAlertOnce() async throws {
        let s = try await Setup()
        let writer = WriteTransaction()
        var old = try s.plan(1...9)
        for index in old.publishes.indices { old.publishes[index].origin = nil }
        _ = try await writer.apply(old, on: s.redis)
        _ = try await s.redis.send(.del([s.keys.alerted(camera: 7)]))
        for id in ["p0-3", "p0-6", "p0-9"] { _ = try await s.redis.send(.set(s.keys.legacyAlertMarker(id), "1", expiry: .seconds(3_600))) }

        // Batch 1 (4, 5): no alert; the camera gets its offset and stays flagged as upgrading.
        _ = try await writer.apply(try s.plan(4...5), on: s.redis)
        #expect(try await s.redis.send(.hmget(s.keys.position(7), fields: ["kafka_offset", "legacy_markers"])) == [Array("5".utf8), Array("1".utf8)])
        // Batch 2 (6…8) and 3 (9…13): 6 and 9 were alerted by the old version; 12 is new, and
        // with it the flag goes.
        let second = try await writer.apply(try s.plan(6...8), on: s.redis)
        #expect(second.alertsPushed == 0 && second.alertsDeduplicated == 1, "\(second)")
        let third = try await writer.apply(try s.plan(9...13), on: s.redis)
        #expect(third.alertsPushed == 1 && third.alertsDeduplicated == 1, "\(third)")
        #expect(try await s.alerts() == ["p0-12", "p0-9", "p0-6", "p0-3"])
        #expect(try await s.redis.send(.hget(s.keys.position(7), field: "legacy_markers")) == nil, "done upgrading")
        // From here no old marker is read: a marker appearing now changes nothing.
        _ = try await s.redis.send(.set(s.keys.legacyAlertMarker("p0-15"), "1", expiry: .seconds(3_600)))
        let later = try await writer.apply(try s.plan(14...15), on: s.redis)
        #expect(later.alertsPushed == 1)
    }
}

/// The service started on a Redis written by a version before the applied offset, with the
/// messages since that version's last commit delivered again.
@Suite struct UpgradeInPlaceTests {
    @Test func theServiceRunsOnWithoutAlertingARedeliveryTwice() async throws {
        let h = try await AggregatorHarness(partitions: 1) { $0.alertListLength = 1_000 }
        var simulator = ResultSimulator(cameras: 4, alertRatio: 0.4, seed: 31, runTag: "upgrade")
        let frames = (0..<200).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        // The old version applied the first 120 (positions without a Kafka pair, a marker per
        // alert, no dedupe list) and died before committing any of them.
        let old = Array(frames.prefix(120))
        let planner = WritePlanner(keys: h.keys, alertRule: h.configuration.alertRule)
        let valid = try old.map { try AssessmentMessage(validating: $0.assessment) }
        _ = try await WriteTransaction(settings: h.configuration.writeSettings).apply(planner.plan(valid, detections: old.map(\.detection)), on: h.redis)
        for camera in 0..<4 { _ = try await h.redis.send(.del([h.keys.alerted(camera: camera)])) }
        for frame in old where frame.isAlert { _ = try await h.redis.send(.set(h.keys.legacyAlertMarker(frame.requestId), "1", expiry: .seconds(7 * 24 * 3600))) }
        let markers = old.filter(\.isAlert).count
        #expect(markers > 10)

        // All 200 arrive (the first 120 again), then the upgraded service runs.
        try await h.send(frames)
        try h.start()
        try await h.waitUntilCommitted()
        for (camera, mine) in Dictionary(grouping: frames, by: \.cameraId) {
            let alerts = try await h.alerts(camera)
            #expect(alerts.count == Set(alerts).count && Set(alerts) == Set(mine.filter(\.isAlert).map(\.requestId)), "camera \(camera): every alert once across the upgrade")
            #expect(AggregatorHarness.requestId(try #require(try await h.latest(camera))) == mine.last?.requestId)
            let pair = try await h.redis.send(.hmget(h.keys.position(camera), fields: ["kafka_partition", "kafka_offset"]))
            #expect(pair.allSatisfy { $0 != nil }, "camera \(camera): the applied offset is stored from the first write on")
        }
        // The old markers are left to expire; none is written.
        #expect(try await h.scan(h.keys.legacyAlertMarker("*")).count == markers)
        try await h.stop()

        // From now on the offset decides: the same 200 delivered again (a group reset) change nothing.
        var again = h.configuration
        again.group = uniqueName("group-again")
        let rereader = try AggregatorService(configuration: again, bootstrap: h.kafka.bootstrapServers, logger: Logger(label: "test.aggregator.again"))
        let rereading = Task { try await rereader.run() }
        try await waitUntil("the second reading skipped", timeout: .seconds(60)) {
            var skipped = 0
            for camera in 0..<4 { skipped += try await h.redis.send(.hget(h.keys.position(camera), field: "redelivered_skipped")).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0 }
            return skipped == 200
        }
        rereader.requestStop()
        try await rereading.value
        for (camera, mine) in Dictionary(grouping: frames, by: \.cameraId) {
            let alerts = try await h.alerts(camera)
            #expect(alerts.count == mine.filter(\.isAlert).count, "camera \(camera): no alert from the second reading")
        }
    }
}

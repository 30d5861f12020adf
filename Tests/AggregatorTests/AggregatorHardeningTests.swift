import Foundation
import KafkaClient
import RedisClient
import Testing
import TestSupport
import TrafficModel
import Digest
import Websockets
@testable import Aggregator
import Simulation

/// Hostile and oversized input (issue: hardening), against a real redis-server and the embedded
/// broker: no single message may stall the stream, bloat results or forge what the aggregator
/// writes, and health must tell the truth when processing stalls.
@Suite struct AggregatorHardeningTests {
    static let time = "2025-10-20T10:30:00Z"

    /// A producer that can send messages up to 4 MB (the library default stops at 1,000,000).
    static func bigProducer(_ h: AggregatorHarness) throws -> KafkaProducer {
        try KafkaProducer(configuration: h.kafka.producerConfiguration(["message.max.bytes": "4000000"]))
    }

    static func malformed(size: Int) -> [UInt8] {
        Array(#"{"requestId":"big","pad":""#.utf8) + [UInt8](repeating: UInt8(ascii: "x"), count: size - 26)
    }

    static func metric(_ h: AggregatorHarness, _ line: String) -> Bool {
        String(decoding: h.service!.metrics.render(), as: UTF8.self).contains(line)
    }

    @Test func aRejectedMessageOverTheProducersDefaultLimitIsDeadLetteredWhole() async throws {
        let h = try await AggregatorHarness(partitions: 1)
        let producer = try Self.bigProducer(h)
        let bad = Self.malformed(size: 1_020_036) // under --max-message-bytes (1 MiB), over librdkafka's default 1,000,000
        try await producer.send(topic: h.topic, key: Array("1".utf8), value: bad)
        try await producer.send(topic: h.topic, key: Array("1".utf8), value: Array(assessment("after-big", camera: 1, time: Self.time, level: "high").utf8))
        try h.start()
        try await h.waitUntilCommitted()
        #expect(try await h.alerts(1) == ["after-big"])
        let letters = try await h.deadLetters(expected: 1)
        #expect(letters.first?.value == bad, "copied whole")
        #expect(letters.first?.header(DeadLetterHeader.truncated) == nil)
        try await h.stop()
    }

    @Test func aDeadLetterRefusedWholeIsWrittenTruncatedWithItsSizeAndDigest() async throws {
        let h = try await AggregatorHarness(partitions: 1) { $0.deadLetterProducerProperties = ["message.max.bytes": "200000"] }
        let producer = try Self.bigProducer(h)
        let bad = Self.malformed(size: 500_000)
        try await producer.send(topic: h.topic, key: Array("2".utf8), value: bad)
        try await producer.send(topic: h.topic, key: Array("2".utf8), value: Array(assessment("after-truncated", camera: 2, time: Self.time, level: "high").utf8))
        try h.start()
        try await h.waitUntilCommitted()
        #expect(try await h.alerts(2) == ["after-truncated"])
        let letter = try #require(try await h.deadLetters(expected: 1).first)
        #expect(letter.value == Array(bad.prefix(64 * 1024)))
        #expect(letter.header(DeadLetterHeader.truncated) == Array("true".utf8))
        #expect(letter.header(DeadLetterHeader.originalSize) == Array("500000".utf8))
        #expect(letter.header(DeadLetterHeader.originalSHA256) == Array(try SHA256.hexDigest(bad).utf8))
        #expect(letter.header(DeadLetterHeader.reason) == Array("malformed_json".utf8))
        #expect(Self.metric(h, "aggregator_dead_letters_truncated_total 1"))
        try await h.stop()
    }

    @Test func aDeadLetterRefusedEvenTruncatedIsCountedAsLostAndTheStreamMovesOn() async throws {
        let h = try await AggregatorHarness(partitions: 1)
        try h.produce(Array(#"{"requestId":"lost","#.utf8), camera: 3)
        try h.produce(assessment("after-lost", camera: 3, time: Self.time, level: "high"), camera: 3)
        try await h.flush()
        // The broker refuses the next two Produce requests (the whole letter, then the truncated one).
        let tooLarge = Int32(10) // MSG_SIZE_TOO_LARGE
        h.kafka.failNextRequests(.produce, with: [tooLarge, tooLarge])
        try h.start()
        try await h.waitUntilCommitted()
        #expect(try await h.alerts(3) == ["after-lost"])
        #expect(Self.metric(h, #"aggregator_dead_letters_lost_total{reason="malformed_json"} 1"#))
        try await h.stop()
    }

    @Test func healthReportsAStalledPartitionAndItsRealLagUntilItMovesAgain() async throws {
        let h = try await AggregatorHarness(partitions: 1) {
            $0.stallThreshold = .milliseconds(800)
            $0.progressInterval = .milliseconds(100)
            $0.deadLetterProducerProperties = ["retry.backoff.ms": "100"]
        }
        try h.produce(Array("not json".utf8), camera: 4)
        for n in 0..<5 { try h.produce(assessment("waiting-\(n)", camera: 4, time: Self.time, level: "high"), camera: 4) }
        try await h.flush()
        // A transient refusal (NOT_ENOUGH_REPLICAS) of many Produce requests: librdkafka retries,
        // the dead letter waits, the partition cannot advance.
        h.kafka.failNextRequests(.produce, with: [Int32](repeating: 19, count: 40))
        try h.start()
        try await waitUntil("health reports the stall", timeout: .seconds(30), every: .milliseconds(50)) {
            let report = h.service!.health
            return !report.ready && report.json.contains(#""lag":6"#) && report.json.contains("has not advanced")
        }
        #expect(Self.metric(h, "aggregator_consumer_lag_messages 6"))
        #expect(Self.metric(h, "aggregator_stalled_partitions 1"))
        try await h.waitUntilCommitted(timeout: .seconds(60))
        try await waitUntil("health ready again", timeout: .seconds(10)) { h.service!.health.ready }
        #expect(Self.metric(h, "aggregator_consumer_lag_messages 0"))
        #expect(try await h.alerts(4).count == 5)
        try await h.stop()
    }

    @Test func frameImagesAreStoredApartAndResultsCarryAReference() async throws {
        let h = try await AggregatorHarness(partitions: 1)
        try h.start()
        let small = FramePainter.png(width: 192, height: 108, boxes: [(100, 100, 600, 400)], scale: 10)
        let large = FramePainter.png(width: 640, height: 400, boxes: [], scale: 1) // ~770 KB
        for (id, image, dataURL) in [("frame-small", small, false), ("frame-large", large, true)] {
            let encoded = (dataURL ? "data:image/png;base64," : "") + Data(image).base64EncodedString()
            let detection = #"{"detectedObjects":[{"class":"car","bbox":[100,100,600,400]}],"trafficGroups":[],"frameWidth":1920,"frameImage":"\#(encoded)"}"#
            _ = try await h.redis.send(.set(h.keys.detection(id), Array(detection.utf8)))
            try h.produce(assessment(id, camera: 5, time: Self.time), camera: 5)
        }
        try await h.flush()
        try await h.waitUntilCommitted()
        let history = try await h.redis.send(.raw(["XRANGE", h.keys.history(5), "-", "+"]))
        guard case .array(let entries) = history else { Issue.record("history \(history)"); return }
        #expect(entries.count == 2)
        for (id, image) in [("frame-small", small), ("frame-large", large)] {
            let stored: [UInt8]? = try await h.redis.send(.get(h.keys.frame(camera: 5, requestId: id)))
            #expect(stored == image, "\(id): the decoded image under its own key")
            let ttl = try await h.redis.send(.raw(["TTL", h.keys.frame(camera: 5, requestId: id)]))
            guard case .integer(let seconds) = ttl else { Issue.record("TTL \(ttl)"); continue }
            #expect((1...300).contains(seconds), "the result's TTL: set, and no longer than configured")
        }
        let latest = try #require(try await h.latest(5))
        #expect(latest.count < 2_000, "the published result stays small: \(latest.count) bytes")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(latest)) as? [String: Any])
        #expect(object["frameImage"] == nil)
        let reference = try #require(object["frameImageRef"] as? [String: Any])
        #expect(reference["url"] as? String == "/api/cameras/5/frames/frame-large")
        #expect(reference["bytes"] as? Int == large.count)
        #expect(object["frameWidth"] as? Int == 1920, "the rest of the detection stays")
        #expect(Self.metric(h, "aggregator_frames_stored_total 2"))
        try await h.stop()
    }

    @Test func batchesOverTheByteBudgetAreCutAndTheRestFollowsInOrder() async throws {
        let h = try await AggregatorHarness(partitions: 1) { $0.maximumBatchBytes = 20_000 }
        let image = FramePainter.png(width: 40, height: 30, boxes: [])
        var ids: [String] = []
        for n in 0..<30 {
            let id = "budget-\(n)"
            ids.append(id)
            let detection = #"{"detectedObjects":[],"trafficGroups":[],"frameImage":"\#(Data(image).base64EncodedString())","pad":"\#(String(repeating: "d", count: 4_000))"}"#
            _ = try await h.redis.send(.set(h.keys.detection(id), Array(detection.utf8)))
            try h.produce(assessment(id, camera: 11, time: ResultSimulator.rfc3339(1_760_000_000_000 + Int64(n) * 1000), level: "high"), camera: 11)
            if n == 10 { try h.produce(Array("bad in the middle".utf8), camera: 11) }
        }
        try await h.flush()
        try h.start()
        try await h.waitUntilCommitted()
        #expect(try await h.alerts(11) == ids.reversed(), "every message written once, in order")
        let history = try await h.redis.send(.xrange(h.keys.history(11)))
        #expect(history.map(\.id) == (1...30).map { "\($0)-0" }, "one gap-free sequence")
        #expect(try await h.deadLetters(expected: 1).count == 1, "the bad message dead-lettered once")
        #expect(Self.metric(h, "aggregator_messages_consumed_total 31"), "each message counted once")
        try await h.stop()
    }

    @Test func aResultOverTheBoundIsDeadLetteredWithItsReason() async throws {
        let h = try await AggregatorHarness(partitions: 1)
        try h.start()
        let detection = #"{"detectedObjects":[],"trafficGroups":[],"notes":"\#(String(repeating: "n", count: 300_000))"}"#
        _ = try await h.redis.send(.set(h.keys.detection("huge-result"), Array(detection.utf8)))
        try h.produce(assessment("huge-result", camera: 6, time: Self.time, level: "high"), camera: 6)
        try h.produce(assessment("normal-result", camera: 6, time: "2025-10-20T10:30:01Z", level: "high"), camera: 6)
        try await h.flush()
        try await h.waitUntilCommitted()
        #expect(try await h.alerts(6) == ["normal-result"])
        let letter = try #require(try await h.deadLetters(expected: 1).first)
        #expect(letter.header(DeadLetterHeader.reason) == Array("result_too_large".utf8))
        #expect(String(decoding: letter.header(DeadLetterHeader.detail) ?? [], as: UTF8.self).contains("limit"))
        try await h.stop()
    }

    @Test func reservedAndDuplicateFieldsCannotForgeWhatTheAggregatorWrites() async throws {
        let h = try await AggregatorHarness(partitions: 1)
        try h.start()
        let forgedMessage = assessment("forged-msg", camera: 7, time: Self.time, extra: #","position":{"offset":999,"epoch":"x"}"#)
        let duplicateCamera = assessment("dup-camera", camera: 7, time: Self.time, extra: #","cameraId":8"#)
        let detection = #"{"detectedObjects":[],"trafficGroups":[],"position":{"offset":999,"epoch":"forged"},"detectionMissing":false}"#
        _ = try await h.redis.send(.set(h.keys.detection("forged-detection"), Array(detection.utf8)))
        try h.produce(forgedMessage, camera: 7)
        try h.produce(duplicateCamera, camera: 7)
        try h.produce(assessment("forged-detection", camera: 7, time: Self.time), camera: 7)
        try await h.flush()
        try await h.waitUntilCommitted()
        let letters = try await h.deadLetters(expected: 2)
        #expect(Set(letters.compactMap { $0.header(DeadLetterHeader.reason).map { String(decoding: $0, as: UTF8.self) } }) == ["reserved_field", "duplicate_field"])
        let latest = String(decoding: try #require(try await h.latest(7)), as: UTF8.self)
        #expect(latest.components(separatedBy: #""position":"#).count == 2, "exactly one position: \(latest)")
        #expect(latest.hasPrefix(#"{"position":{"offset":1,"#))
        #expect(!latest.contains(#""epoch":"forged""#) && !latest.contains(#""offset":999"#) && !latest.contains("detectionMissing"))
        #expect(Self.metric(h, "aggregator_detection_fields_dropped_total 2"))
        try await h.stop()
    }

    @Test func aFarFutureTimestampIsDeadLetteredAndCannotPinLatest() async throws {
        let h = try await AggregatorHarness(partitions: 1)
        try h.start()
        try h.produce(assessment("from-the-future", camera: 8, time: "9999-12-31T23:59:59Z"), camera: 8)
        try h.produce(assessment("present", camera: 8, time: ResultSimulator.rfc3339(Int64(Date().timeIntervalSince1970 * 1000))), camera: 8)
        try await h.flush()
        try await h.waitUntilCommitted()
        let letter = try #require(try await h.deadLetters(expected: 1).first)
        #expect(letter.header(DeadLetterHeader.reason) == Array("timestamp_in_future".utf8))
        #expect(AggregatorHarness.requestId(try #require(try await h.latest(8))) == "present")
        try await h.stop()
    }

    @Test func corruptDetectionsAreCountedApartFromMissingOnes() async throws {
        let h = try await AggregatorHarness(partitions: 1)
        try h.start()
        _ = try await h.redis.send(.set(h.keys.detection("corrupt-detection"), Array("{not json".utf8)))
        try h.produce(assessment("corrupt-detection", camera: 9, time: Self.time), camera: 9)
        try h.produce(assessment("absent-detection", camera: 9, time: "2025-10-20T10:30:01Z"), camera: 9)
        try await h.flush()
        try await h.waitUntilCommitted()
        #expect(Self.metric(h, "aggregator_detection_missing_total 2"))
        #expect(Self.metric(h, "aggregator_detection_corrupt_total 1"))
        try await h.stop()
    }
}

/// The pure parts: progress tracking, merging, frames.
@Suite struct HardeningUnitTests {
    let partition = KafkaTopicPartition(topic: "t", partition: 0)

    func message(_ offset: Int64) -> KafkaMessage {
        KafkaMessage(topic: "t", partition: 0, offset: offset, key: nil, value: [])
    }

    @Test func anIdlePartitionIsNotStalledAndAWaitingOneIsOnlyAfterTheThreshold() {
        var progress = PartitionProgress(threshold: .seconds(5))
        let t0 = ContinuousClock.now
        progress.update(ends: [partition: 10], fetchPositions: [partition: 10], now: t0)
        #expect(progress.stalls(now: t0 + .seconds(60)).isEmpty, "nothing waits")
        progress.seen([message(10), message(11)])
        #expect(progress.update(ends: [partition: 12], fetchPositions: [partition: 12], now: t0 + .seconds(61)) == 2, "lag counts from what is processed, not fetched")
        #expect(progress.stalls(now: t0 + .seconds(65)).isEmpty, "waiting, but not for longer than the threshold")
        #expect(progress.stalls(now: t0 + .seconds(67)).first?.lag == 2)
        progress.processed([message(10)], now: t0 + .seconds(67))
        #expect(progress.stalls(now: t0 + .seconds(68)).isEmpty, "progress restarts the clock")
        progress.processed([message(11)], now: t0 + .seconds(69))
        #expect(progress.update(ends: [partition: 12], fetchPositions: [partition: 12], now: t0 + .seconds(70)) == 0)
        #expect(progress.stalls(now: t0 + .seconds(100)).isEmpty)
        // Offsets that never arrive as messages (a transaction's commit marker at 12): once every
        // seen message is processed, the fetch position counts as processed.
        #expect(progress.update(ends: [partition: 13], fetchPositions: [partition: 13], now: t0 + .seconds(101)) == 0)
        #expect(progress.stalls(now: t0 + .seconds(200)).isEmpty)
        progress.update(ends: [:], fetchPositions: [:], now: t0 + .seconds(201))
        #expect(progress.entries.isEmpty, "revoked partitions are forgotten")
    }

    @Test func permanentProduceErrorsAreToldFromTransientOnes() {
        #expect(KafkaError(kind: .produce, code: 10, message: "").isPermanentForMessage)
        #expect(!KafkaError(kind: .produce, code: 19, message: "").isPermanentForMessage)
        #expect(!KafkaError(kind: .produce, code: -192, message: "").isPermanentForMessage, "_MSG_TIMED_OUT")
    }

    @Test func mediaTypesAreSniffedAndOnlyRasterImagesNamed() {
        #expect(FrameImage.mediaType(of: FramePainter.png(width: 2, height: 2, boxes: [])) == "image/png")
        #expect(FrameImage.mediaType(of: [0xFF, 0xD8, 0xFF, 0xE0]) == "image/jpeg")
        #expect(FrameImage.mediaType(of: Array("<svg onload=alert(1)>".utf8)) == "application/octet-stream")
    }

    @Test func badFrameImagesAreDroppedWithTheirReason() throws {
        for (value, reason) in [(#""!!not base64!!""#, "not base64"), ("42", "not a string"), (#""\#(String(repeating: "A", count: 4000))""#, "frame bound")] {
            let message = try AssessmentMessage(validating: Array(assessment("f", camera: 1, time: "2025-01-01T00:00:00Z", extra: #","frameImage":\#(value)"#).utf8))
            let merged = ResultMerger.merge(message, detection: nil, maximumFrameBytes: 1000)
            #expect(merged.frame == nil)
            #expect(merged.frameProblem?.contains(reason) == true, "\(merged.frameProblem ?? "nil")")
            #expect(!String(decoding: merged.json, as: UTF8.self).contains("frameImage"))
        }
    }

    @Test func frameImagesMayBeURLSafeOrUnpadded() throws {
        let message = try AssessmentMessage(validating: Array(assessment("f", camera: 1, time: "2025-01-01T00:00:00Z", extra: #","frameImage":"aGk""#).utf8))
        #expect(ResultMerger.merge(message, detection: nil).frame == Array("hi".utf8))
        let urlSafe = try AssessmentMessage(validating: Array(assessment("g", camera: 1, time: "2025-01-01T00:00:00Z", extra: #","frameImage":"-_-_""#).utf8))
        #expect(ResultMerger.merge(urlSafe, detection: nil).frame == [0xFB, 0xFF, 0xBF])
    }

    @Test func cameraIdsOutOfRangeNameTheRange() {
        do {
            _ = try AssessmentMessage(validating: Array(assessment("c", camera: 0, time: "2025-01-01T00:00:00Z").replacingOccurrences(of: #""cameraId":0"#, with: #""cameraId":1234567890123456789"#).utf8))
            Issue.record("accepted a 19-digit camera id")
        } catch {
            #expect(error.detail.contains("0 to 999999999999999999"))
        }
    }
}

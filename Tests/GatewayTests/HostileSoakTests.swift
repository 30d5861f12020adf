import Foundation
import KafkaClient
import Logging
import RedisClient
import Testing
import TestSupport
import TrafficModel
import Websockets
@testable import Aggregator
@testable import Gateway
import Simulation

/// Both services under hostile input and hostile clients at once (issue: hardening): valid
/// messages mixed with every bad class, random and mutated payloads of 0 B–3 MB, oversized
/// detections and frame images; slow, oversized, unmasked and flooding WebSocket clients beside
/// well-behaved ones. At the end of every round each valid message's effects are in Redis, each
/// well-behaved client got every result it was entitled to, gap-free, each bad message is in
/// the dead-letter topic with its reason (or counted as lost), and both services are healthy.
///
/// CI runs one small round; `TRAFFIC_SOAK_SECONDS=600` keeps running rounds for that long.
@Suite struct HostileSoakTests {
    static let soakSeconds = Int(ProcessInfo.processInfo.environment["TRAFFIC_SOAK_SECONDS"] ?? "") ?? 0

    /// What one round sent and expects.
    struct Expectations {
        /// requestId → camera of every message the aggregator must publish.
        var published: [String: Int] = [:]
        var alerts: Set<String> = []
        /// Where every message that must be dead-lettered landed, and its reason when crafted.
        var deadLetters: [String: String?] = [:] // "partition@offset" → reason
    }

    @Test func hostileInputAndClientsLeaveBothServicesHealthyAndLoseNothing() async throws {
        let redisServer = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: redisServer.configuration)
        let topic = uniqueName("soak")
        let dlq = topic + ".dlq"
        let partitions = 8
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: partitions), .init(dlq, partitions: partitions)])
        let keys = KeySchema(namespace: uniqueName("soak") + ":")

        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrapServers
        config.topic = topic
        config.deadLetterTopic = dlq
        config.group = uniqueName("group")
        config.redisURL = redisServer.url
        config.keys = keys
        config.kafkaProperties = EmbeddedKafka.recommendedConsumerProperties
        config.alertListLength = 1_000_000
        config.historyLength = 1_000_000
        config.metricsPort = 0
        let aggregator = try AggregatorService(configuration: config, bootstrap: kafka.bootstrapServers, logger: Logger(label: "soak.aggregator"))
        let running = Task { try await aggregator.run() }

        var gateway: GatewayService?
        for _ in 0..<5 where gateway == nil {
            var gatewayConfig = GatewayConfiguration()
            gatewayConfig.port = try FreePort.find()
            gatewayConfig.redisURL = redisServer.url
            gatewayConfig.keys = keys
            gatewayConfig.probeInterval = .milliseconds(200)
            gatewayConfig.clientMessageRate = 20
            gateway = try? GatewayService(configuration: gatewayConfig, logger: Logger(label: "soak.gateway")) // try?: a gateway that cannot start fails the test on the nil
        }
        let service = try #require(gateway)
        try await waitUntil("gateway healthy") { service.health.healthy }
        let clients = try WebSocketTestClients(port: service.port)

        // Well-behaved clients: everything, and three cameras.
        let everything = try await clients.open()
        let some = try await clients.open()
        clients.send(#"{"type":"subscribe","cameras":"*"}"#, to: everything)
        clients.send(#"{"type":"subscribe","cameras":[0,1,2]}"#, to: some)
        try await clients.waitFor(everything, type: "subscribed")
        try await clients.waitFor(some, type: "subscribed")
        // Hostile clients: one that never reads, one flooding, one sending an oversized frame.
        let slow = try await clients.open()
        clients.send(#"{"type":"subscribe","cameras":"*"}"#, to: slow)
        try await clients.waitFor(slow, type: "subscribed")
        try await clients.pauseReading(slow)
        let flooder = try await clients.open()
        let oversized = try await clients.open()

        let producer = try KafkaProducer(configuration: kafka.producerConfiguration(["message.max.bytes": "4000000", "linger.ms": "5"]))
        let dlqReader = try KafkaConsumer(configuration: kafka.consumerConfiguration(group: uniqueName("dlq-reader")))
        try dlqReader.subscribe(topics: [dlq])
        var letters: [String: KafkaMessage] = [:] // "partition@offset" of the source → letter
        var rng = SplitMix(seed: 2026)
        var simulator = ResultSimulator(cameras: 12, alertRatio: 0.3, seed: 11, runTag: "soak")
        simulator.frameImageEvery = 40
        let planner = WritePlanner(keys: keys, alertRule: AlertRule())
        var expected = Expectations()
        let deadline = ContinuousClock.now + .seconds(Self.soakSeconds)
        var round = 0
        repeat {
            round += 1
            let sent = try await Self.sendRound(round, producer: producer, topic: topic, partitions: partitions, redis: redis, keys: keys, planner: planner, simulator: &simulator, rng: &rng)
            expected.published.merge(sent.published) { $1 }
            expected.alerts.formUnion(sent.alerts)
            expected.deadLetters.merge(sent.deadLetters) { $1 }

            // Hostile clients act while the round is processed.
            for _ in 0..<200 { clients.send(#"{"type":"ping"}"#, to: flooder) }
            if round == 1 {
                clients.send(#"{"type":"ping","pad":""# + String(repeating: "x", count: 70_000) + #""}"#, to: oversized)
                let port = service.port
                let unmasked = try await GatewayWireTests.blocking { () -> UInt16? in
                    let socket = try RawWebSocket(port: port)
                    try socket.write(RawWebSocket.textFrame(#"{"type":"subscribe","cameras":"*"}"#, masked: false))
                    return try socket.closeCode()
                }
                #expect(unmasked == 1002)
                #expect(try await clients.waitClosed(oversized).code == 1009)
            }

            try await Self.waitUntilCommitted(kafka: kafka, topic: topic, group: config.group)
            // Every message that must be dead-lettered is there with its reason, or counted lost.
            try await waitUntil("round \(round): every bad message dead-lettered", timeout: .seconds(60), every: .milliseconds(50)) {
                for letter in try await dlqReader.nextBatch(maxMessages: 1000, timeout: .milliseconds(50)) {
                    guard let partition = letter.header(DeadLetterHeader.sourcePartition), let offset = letter.header(DeadLetterHeader.sourceOffset) else { continue }
                    letters[String(decoding: partition, as: UTF8.self) + "@" + String(decoding: offset, as: UTF8.self)] = letter
                }
                return expected.deadLetters.keys.allSatisfy { letters[$0] != nil } || Self.lost(aggregator) > 0
            }
            let missing = expected.deadLetters.keys.filter { letters[$0] == nil }
            #expect(missing.count <= Self.lost(aggregator), "dead letters missing and not counted as lost: \(missing.prefix(5))")
            for (position, reason) in expected.deadLetters {
                guard let letter = letters[position] else { continue }
                let written = letter.header(DeadLetterHeader.reason).map { String(decoding: $0, as: UTF8.self) } ?? ""
                #expect(!written.isEmpty, "\(position) has a reason")
                if let reason { #expect(written == reason, "\(position)") }
            }

            // Every valid message's effects are in Redis: its camera's history and alert list.
            var histories: [Int: [String]] = [:]
            for camera in Set(expected.published.values) {
                let entries = try await redis.send(.xrange(keys.history(camera), start: "-", end: "+"))
                histories[camera] = entries.compactMap { $0["r"].map(AggregatorHarnessShim.requestId) }
                let alerts = Set(try await redis.send(.lrange(keys.alerts(camera), start: 0, stop: -1)).map(AggregatorHarnessShim.requestId))
                for (id, c) in expected.published where c == camera {
                    #expect(histories[camera]!.contains(id), "\(id) published to camera \(camera)")
                    if expected.alerts.contains(id) { #expect(alerts.contains(id), "alert \(id)") }
                }
            }
            let totalPublished = histories.values.reduce(0) { $0 + $1.count }

            // Well-behaved clients got everything they are entitled to, in gap-free order.
            try await waitUntil("round \(round): the all-cameras client got every result", timeout: .seconds(30)) {
                Self.results(clients, everything).count >= totalPublished
            }
            let entitled = histories.filter { [0, 1, 2].contains($0.key) }.values.reduce(0) { $0 + $1.count }
            try await waitUntil("round \(round): the three-camera client got its results", timeout: .seconds(30)) {
                Self.results(clients, some).count >= entitled
            }
            for (client, cameras) in [(everything, Set(histories.keys)), (some, Set([0, 1, 2]))] {
                let got = Self.results(clients, client)
                for camera in cameras {
                    let mine = got.filter { $0.camera == camera }
                    #expect(mine.map(\.offset) == (0..<Int64(mine.count)).map { $0 + 1 }, "camera \(camera): gap-free from 1")
                    #expect(mine.map(\.requestId) == histories[camera] ?? [], "camera \(camera): exactly what was published, in order")
                }
            }
            print("soak round \(round): \(totalPublished) results published, \(expected.deadLetters.count) dead letters expected (\(letters.count) read, \(Self.lost(aggregator)) lost), all-cameras client \(Self.results(clients, everything).count) results, three-camera client \(Self.results(clients, some).count)")
            #expect(clients.isOpen(everything) && clients.isOpen(some) && clients.isOpen(flooder))
            #expect(aggregator.health.ready, "\(aggregator.health.json)")
            #expect(service.health.healthy)
        } while ContinuousClock.now < deadline

        let flooded = clients.objects(flooder).filter { $0["type"] as? String == "error" }
        #expect(flooded.contains { $0["reason"] as? String == "rate_limited" })
        if let closed = clients.closeInfo(slow) { #expect(closed.code == 1008, "a client that does not read is dropped as too slow") }

        clients.stop()
        await service.stop()
        aggregator.requestStop()
        try await running.value
        await dlqReader.close()
        await redis.close()
        redisServer.stop()
    }

    /// Produces one round: valid messages (with detections, some with frames), crafted bad ones
    /// of each class, mutated and random payloads up to 3 MB. Classifies everything with the
    /// aggregator's own planner, so a mutation that stays valid is expected to be published.
    static func sendRound(_ round: Int, producer: KafkaProducer, topic: String, partitions: Int, redis: RedisClient, keys: KeySchema, planner: WritePlanner,
                          simulator: inout ResultSimulator, rng: inout SplitMix) async throws -> Expectations {
        var out = Expectations()
        var detections = RedisPipeline()
        var pending: [(value: [UInt8], key: [UInt8]?, partition: Int32?, reason: String?, camera: Int?)] = []
        let hourAgo = Int64(Date().timeIntervalSince1970 * 1000) - 3_600_000
        for i in 0..<1_500 {
            let frame = simulator.next(at: hourAgo + Int64(round * 10_000 + i))
            let key = Array(String(frame.cameraId).utf8)
            switch rng.next() % 10 {
            case 0...3:
                detections.append(.set(keys.detection(frame.requestId), frame.detection, expiry: .seconds(600)))
                pending.append((frame.assessment, key, nil, nil, frame.cameraId))
            case 4 where i % 50 == 4:
                // An oversized detection: the merged result is over the bound.
                let huge = #"{"detectedObjects":[],"trafficGroups":[],"notes":"\#(String(repeating: "n", count: 300_000))"}"#
                detections.append(.set(keys.detection(frame.requestId), Array(huge.utf8), expiry: .seconds(600)))
                pending.append((frame.assessment, key, nil, "result_too_large", frame.cameraId))
            case 5:
                let text = String(decoding: frame.assessment, as: UTF8.self)
                pending.append((Array(text.replacingOccurrences(of: #""llmModel""#, with: #""position":{"offset":1,"epoch":"x"},"llmModel""#).utf8), key, nil, "reserved_field", nil))
            case 6:
                let text = String(decoding: frame.assessment, as: UTF8.self)
                let future = ResultSimulator.rfc3339(Int64(Date().timeIntervalSince1970 * 1000) + 86_400_000)
                pending.append((Array(text.replacingOccurrences(of: ResultSimulator.rfc3339(frame.timestampMilliseconds), with: future).utf8), key, nil, "timestamp_in_future", nil))
            default:
                pending.append((Fuzzing.mutate(frame.assessment, &rng), key, nil, nil, nil))
            }
        }
        // Random payloads from 0 B to 3 MB, each on its own partition (the embedded broker keeps
        // about 5 MiB per partition).
        for (index, size) in [0, 1, 4_096, 700_000, 1_500_000, 3_000_000].enumerated() {
            pending.append((Fuzzing.randomBytes(size, &rng), nil, Int32(index % partitions), nil, nil))
        }
        _ = try await redis.execute(detections)

        let reports = Collector<(Int, KafkaDeliveryReport)>()
        for (index, message) in pending.enumerated() {
            try producer.produce(topic: topic, partition: message.partition, key: message.key, value: message.value) { result in
                if case .success(let report) = result { reports.append((index, report)) }
            }
        }
        try await producer.flush()
        #expect(reports.count == pending.count, "every message produced")
        var positions: [Int: String] = [:]
        for (index, report) in reports.values { positions[index] = "\(report.partition)@\(report.offset)" }

        let now = Date()
        for (index, message) in pending.enumerated() {
            let (valid, _, _) = planner.decode([KafkaMessage(topic: topic, partition: 0, offset: 0, key: message.key, value: message.value)], now: now)
            if let assessment = valid.first, message.reason == nil {
                out.published[assessment.requestId] = assessment.cameraId
                if AlertRule().isAlert(level: assessment.riskLevel, dangerousDriving: assessment.hasDangerousDriving) { out.alerts.insert(assessment.requestId) }
            } else if let position = positions[index] {
                out.deadLetters[position] = message.reason
            }
        }
        return out
    }

    static func lost(_ aggregator: AggregatorService) -> Int {
        String(decoding: aggregator.metrics.render(), as: UTF8.self).split(separator: "\n")
            .filter { $0.hasPrefix("aggregator_dead_letters_lost_total{") }
            .compactMap { $0.split(separator: " ").last.flatMap { Int($0) } }.reduce(0, +)
    }

    static func results(_ clients: WebSocketTestClients, _ id: WebSocketID) -> [(camera: Int, offset: Int64, requestId: String)] {
        clients.objects(id).compactMap { object in
            guard object["type"] as? String == "result", let camera = object["camera"] as? Int,
                  let offset = (object["offset"] as? NSNumber)?.int64Value,
                  let result = object["result"] as? [String: Any], let requestId = result["requestId"] as? String else { return nil }
            return (camera, offset, requestId)
        }
    }

    static func waitUntilCommitted(kafka: EmbeddedKafka, topic: String, group: String) async throws {
        let probe = try KafkaConsumer(configuration: kafka.consumerConfiguration(group: group))
        let partitions = try await probe.partitionCount(topic: topic)
        try await waitUntil("all offsets of \(topic) committed", timeout: .seconds(120), every: .milliseconds(100)) {
            for p in 0..<Int32(partitions) {
                let (_, high) = try await probe.watermarks(topic: topic, partition: p)
                let committed = try await probe.committedOffsets([KafkaTopicPartition(topic: topic, partition: p)]).first?.offset ?? 0
                if committed < high { return false }
            }
            return true
        }
        await probe.close()
    }
}

/// The request id of a stored result.
enum AggregatorHarnessShim {
    static func requestId(_ json: [UInt8]) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(json)) as? [String: Any] // try?: a payload that is no JSON object fails the expectation on it
        return object?["requestId"] as? String ?? "?"
    }
}

import Foundation
import Testing
import TestSupport
@testable import KafkaClient

@Suite struct KafkaFaultTests {
    @Test func consumerResumesAfterTheBrokerIsSetDownAndUp() async throws {
        let topic = uniqueName("results")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 2)])
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration(["message.timeout.ms": "60000"]))
        let consumer = try KafkaConsumer(configuration: kafka.consumerConfiguration(group: uniqueName("g")))
        try consumer.subscribe(topics: [topic])
        for i in 0..<50 { try producer.produce(topic: topic, key: Array("\(i)".utf8), value: Array("\(i)".utf8)) }
        try await producer.flush()
        var values = Set<String>()
        try await waitUntil("the first 50 consumed", timeout: .seconds(30)) {
            for m in try await consumer.nextBatch(maxMessages: 100, timeout: .milliseconds(100)) { values.insert(String(decoding: m.value, as: UTF8.self)) }
            return values.count == 50
        }

        try await kafka.setBrokerDown()
        // Produced while the broker is down: queued by the producer, delivered once it is up.
        for i in 50..<100 { try producer.produce(topic: topic, key: Array("\(i)".utf8), value: Array("\(i)".utf8)) }
        var duringOutage = 0
        for _ in 0..<3 { duringOutage += try await consumer.nextBatch(maxMessages: 100, timeout: .milliseconds(100)).count }
        #expect(duringOutage == 0)
        try await kafka.setBrokerUp()
        try await producer.flush(timeout: .seconds(30))
        try await waitUntil("all 100 consumed after the broker came back", timeout: .seconds(60)) {
            for m in try await consumer.nextBatch(maxMessages: 100, timeout: .milliseconds(100)) { values.insert(String(decoding: m.value, as: UTF8.self)) }
            return values.count == 100
        }
        #expect(values == Set((0..<100).map(String.init)))
        await consumer.close()
    }

    /// Each broker's port is held by an accepted connection (BrokerPortHold), made again after
    /// the broker comes back, so the mock's down-then-rebind never finds its port taken.
    @Test func everyBrokersPortIsHeldAcrossDownAndUp() async throws {
        let kafka = try await EmbeddedKafka.start(brokers: 3)
        #expect(kafka.portHold.heldBrokers == [1, 2, 3], "an answered connection to each broker")
        for _ in 0..<3 {
            try await kafka.setBrokerDown(2)
            try await kafka.setBrokerUp(2)
        }
        #expect(kafka.portHold.heldBrokers == [1, 2, 3])
        #expect(kafka.portHold.hold(broker: 2, port: BrokerPortHold.ports(kafka.bootstrapServers)[1]), "held again after the last up")
    }

    /// Ports the tests give their servers lie below the kernel's ephemeral range, where the
    /// embedded brokers' ports (bind to port 0) and outgoing connections never are.
    @Test func testServerPortsNeverMeetEmbeddedBrokerPorts() async throws {
        let text = try String(contentsOfFile: "/proc/sys/net/ipv4/ip_local_port_range", encoding: .utf8)
        let bounds = text.split(whereSeparator: \.isWhitespace).compactMap { Int($0) }
        try #require(bounds.count == 2 && bounds[0] > 11_025, "this machine's ephemeral range leaves room below it: \(text)")
        let ports = try (0..<50).map { _ in try FreePort.find() }
        #expect(Set(ports).count == 50, "never the same port twice")
        #expect(ports.allSatisfy { $0 < bounds[0] }, "below \(bounds[0]): \(ports.filter { $0 >= bounds[0] })")
        let kafka = try await EmbeddedKafka.start(brokers: 3)
        let brokerPorts = BrokerPortHold.ports(kafka.bootstrapServers)
        #expect(brokerPorts.count == 3 && brokerPorts.allSatisfy { $0 >= bounds[0] && $0 <= bounds[1] }, "brokers on ephemeral ports: \(brokerPorts)")
    }

    @Test func deliveryToAMissingBrokerFailsWithAReport() async throws {
        let port = try FreePort.find()
        let producer = try KafkaProducer(configuration: KafkaConfiguration(["bootstrap.servers": "127.0.0.1:\(port)", "message.timeout.ms": "300"]))
        await #expect {
            try await producer.send(topic: "t", key: nil, value: [1])
        } throws: { error in
            let e = error as! KafkaError
            return e.kind == .produce && e.codeName == "_MSG_TIMED_OUT"
        }
    }
}

/// kcat (a C client) talking to the embedded broker proves it speaks real Kafka.
/// Never skipped: the test command installs kcat.
@Suite struct KcatInteropTests {
    @Test func kcatProducesAndWeConsume() async throws {
        try #require(which("kcat") != nil, "needs kcat (scripts/install-deps.sh installs it)")
        let topic = uniqueName("results")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 1)])
        let input = (0..<20).map { "key\($0):value-\($0)" }.joined(separator: "\n") + "\n"
        let produced = try await runCommand(which("kcat")!, ["-b", kafka.bootstrapServers, "-t", topic, "-P", "-K:"], input: input)
        #expect(produced.status == 0, "kcat -P failed: \(produced.stderr)")
        let consumer = try KafkaConsumer(configuration: kafka.consumerConfiguration(group: uniqueName("g")))
        try consumer.subscribe(topics: [topic])
        var got: [KafkaMessage] = []
        try await waitUntil("kcat's 20 messages consumed", timeout: .seconds(30)) {
            got += try await consumer.nextBatch(maxMessages: 100, timeout: .milliseconds(100))
            return got.count >= 20
        }
        #expect(got.map { String(decoding: $0.value, as: UTF8.self) } == (0..<20).map { "value-\($0)" })
        #expect(got.map { String(decoding: $0.key ?? [], as: UTF8.self) } == (0..<20).map { "key\($0)" })
        await consumer.close()
    }

    @Test func weProduceAndKcatConsumes() async throws {
        try #require(which("kcat") != nil, "needs kcat (scripts/install-deps.sh installs it)")
        let topic = uniqueName("results")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 1)])
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration())
        for i in 0..<10 { try await producer.send(topic: topic, key: nil, value: Array("m\(i)".utf8)) }
        let consumed = try await runCommand(which("kcat")!, ["-b", kafka.bootstrapServers, "-t", topic, "-C", "-o", "beginning", "-e", "-q"])
        #expect(consumed.status == 0, "kcat -C failed: \(consumed.stderr)")
        #expect(consumed.stdout.split(separator: "\n").map(String.init) == (0..<10).map { "m\($0)" })
    }
}

/// A producer's end: whatever is queued when its last reference goes ends with a report, and
/// the last reference may go on its own poll thread.
@Suite struct KafkaProducerLifecycleTests {
    @Test func aDroppedProducersQueuedMessagesAllGetTheirReport() async throws {
        let topic = uniqueName("dropped")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 1)])
        try await kafka.setBrokerDown() // nothing can be delivered
        let reports = Collector<Bool>()
        var producer: KafkaProducer? = try KafkaProducer(configuration: kafka.producerConfiguration(["message.timeout.ms": "120000"]))
        for i in 0..<10 {
            try producer?.produce(topic: topic, key: nil, value: Array("\(i)".utf8)) { result in
                if case .success = result { reports.append(true) } else { reports.append(false) }
            }
        }
        producer = nil
        try await waitUntil("every queued message got its report", timeout: .seconds(30)) { reports.count == 10 }
        #expect(reports.values.allSatisfy { !$0 }, "undeliverable: each failed (purged)")
    }

    @Test func theLastReferenceMayGoInsideACompletionHandler() async throws {
        let topic = uniqueName("self-release")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 1)])
        let events = Collector<String>()
        let delivered = Collector<Bool>()
        // The handler holds the producer; once it has run (on the poll thread) that reference
        // is the last one, and it goes there.
        func produceAndLetGo() throws {
            let producer = try KafkaProducer(configuration: kafka.producerConfiguration()) { event in
                if case .closed = event { events.append("closed") }
            }
            try producer.produce(topic: topic, key: nil, value: Array("x".utf8)) { [producer] result in
                withExtendedLifetime(producer) { if case .success = result { delivered.append(true) } else { delivered.append(false) } }
            }
        }
        try produceAndLetGo()
        try await waitUntil("delivered", timeout: .seconds(30)) { delivered.count == 1 }
        try await waitUntil("the producer was destroyed (no deadlock on its own thread)", timeout: .seconds(30)) { events.values.contains("closed") }
        #expect(delivered.values == [true])
    }
}

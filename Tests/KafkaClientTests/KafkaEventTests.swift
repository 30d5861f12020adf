import Testing
import TestSupport
@testable import KafkaClient

/// Rebalance, error and statistics callbacks arrive as events.
@Suite struct KafkaEventTests {
    /// Polls the consumer (callbacks are served inside poll) and collects its events.
    func collectEvents(_ consumer: KafkaConsumer) -> (Collector<KafkaClientEvent>, Task<Void, Never>) {
        let events = Collector<KafkaClientEvent>()
        let task = Task {
            let reader = Task { for await event in consumer.events { events.append(event) } }
            while !Task.isCancelled { _ = try? await consumer.nextBatch(maxMessages: 10, timeout: .milliseconds(50)) } // try?: polled for its callbacks only; errors arrive as events
            reader.cancel()
        }
        return (events, task)
    }

    @Test func rebalanceAndStatisticsArriveAsEvents() async throws {
        let topic = uniqueName("results")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 2)])
        let consumer = try KafkaConsumer(configuration: kafka.consumerConfiguration(group: uniqueName("g"), ["statistics.interval.ms": "100"]))
        try consumer.subscribe(topics: [topic])
        let (events, polling) = collectEvents(consumer)
        defer { polling.cancel() }
        try await waitUntil("both partitions assigned and statistics reported", timeout: .seconds(30)) {
            let all = events.values
            let assigned: [KafkaTopicPartition] = all.flatMap { event -> [KafkaTopicPartition] in
                if case .assigned(let partitions) = event { return partitions }
                return []
            }
            let statistics = all.contains { if case .statistics(let json) = $0 { json.contains("\"type\"") && json.contains("consumer") } else { false } }
            return Set(assigned.map(\.partition)) == [0, 1] && statistics
        }
        polling.cancel()
        await consumer.close()
    }

    @Test func unreachableBrokersAreReportedAsErrorEvents() async throws {
        let port = try FreePort.find()
        let consumer = try KafkaConsumer(configuration: KafkaConfiguration(["bootstrap.servers": "127.0.0.1:\(port)", "group.id": uniqueName("g")]))
        try consumer.subscribe(topics: ["nowhere"])
        let (events, polling) = collectEvents(consumer)
        defer { polling.cancel() }
        try await waitUntil("an error event for the unreachable broker", timeout: .seconds(30)) {
            events.values.contains { if case .error(let error, false) = $0 { error.isBrokerUnreachable } else { false } }
        }
        polling.cancel()
        await consumer.close()
    }
}

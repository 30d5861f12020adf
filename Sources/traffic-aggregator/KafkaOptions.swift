import ServiceCLI
import ArgumentParser
import Foundation
import KafkaClient

/// Kafka options of the operator commands.
struct KafkaOptions: ParsableArguments {
    @Option(name: .customLong("kafka-bootstrap"), help: "Kafka bootstrap servers (env KAFKA_BOOTSTRAP); `run` without one uses the embedded broker.") var kafkaBootstrap: String?
    @Option(name: .customShort("X"), help: ArgumentHelp("librdkafka property key=value, repeatable (env KAFKA_PROPERTIES).", valueName: "key=value"))
    var kafkaProperties: [String] = []

    var bootstrap: String? { setting(kafkaBootstrap, env: "KAFKA_BOOTSTRAP") }

    /// The operator's librdkafka properties: `KAFKA_PROPERTIES`, then `-X` (flags win).
    func properties() throws -> KafkaConfiguration {
        var config = KafkaConfiguration()
        if let list = env("KAFKA_PROPERTIES") { try config.apply(environmentList: list) }
        try config.apply(assignments: kafkaProperties)
        return config
    }

    func configuration(group: String) throws -> KafkaConfiguration {
        guard let bootstrap else { throw ValidationError("give --kafka-bootstrap or KAFKA_BOOTSTRAP") }
        var config = KafkaConfiguration(["bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": "false", "fetch.wait.max.ms": "10"])
        for (key, value) in try properties().properties { config[key] = value }
        return config
    }

    /// Reads a topic from the beginning up to the end it had when called (nothing is committed).
    func readToEnd(topic: String, limit: Int? = nil) async throws -> [KafkaMessage] {
        let consumer = try KafkaConsumer(configuration: configuration(group: "traffic-aggregator-inspect-\(UUID().uuidString.prefix(8))"))
        let partitions = try await consumer.partitionCount(topic: topic)
        var ends: [Int32: Int64] = [:]
        for p in 0..<Int32(partitions) {
            let (low, high) = try await consumer.watermarks(topic: topic, partition: p)
            if high > low { ends[p] = high }
        }
        var messages: [KafkaMessage] = []
        if ends.isEmpty { await consumer.close(); return [] }
        try consumer.subscribe(topics: [topic])
        var reached = Set<Int32>()
        let deadline = ContinuousClock.now + .seconds(60)
        while reached.count < ends.count, ContinuousClock.now < deadline {
            for message in try await consumer.nextBatch(maxMessages: 1000, timeout: .milliseconds(200)) {
                guard let end = ends[message.partition], message.offset < end else { continue }
                messages.append(message)
                if message.offset + 1 >= end { reached.insert(message.partition) }
                if let limit, messages.count >= limit { await consumer.close(); return messages }
            }
        }
        await consumer.close()
        return messages.sorted { ($0.partition, $0.offset) < ($1.partition, $1.offset) }
    }
}

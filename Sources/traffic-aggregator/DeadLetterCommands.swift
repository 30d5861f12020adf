import ServiceCLI
import Aggregator
import ArgumentParser
import Foundation
import KafkaClient

/// `traffic-aggregator dlq list|replay`.
struct DeadLetterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Inspect and re-inject dead letters.",
        subcommands: [List.self, Replay.self]
    )

    static func header(_ message: KafkaMessage, _ name: String) -> String {
        message.header(name).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters with their reason and source position.")
        @OptionGroup var kafka: KafkaOptions
        @Option(name: .customLong("dlq-topic"), help: "Dead-letter topic (env KAFKA_DLQ_TOPIC).") var topic: String?
        @Option(help: "At most this many.") var limit = 100
        @Option(help: "Only this reason (malformed_json, invalid_utf8, missing_field, wrong_type, invalid_value, oversized, unknown_risk_level).") var reason: String?
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            let topic = topic ?? env("KAFKA_DLQ_TOPIC") ?? "risk-assessment-results.dlq"
            let messages = try await kafka.readToEnd(topic: topic).filter { reason == nil || DeadLetterCommand.header($0, DeadLetterHeader.reason) == reason }
            for message in messages.prefix(limit) {
                let h = { DeadLetterCommand.header(message, $0) }
                if json {
                    let object: [String: Any] = [
                        "dlqPartition": message.partition, "dlqOffset": message.offset, "reason": h(DeadLetterHeader.reason), "detail": h(DeadLetterHeader.detail),
                        "sourceTopic": h(DeadLetterHeader.sourceTopic), "sourcePartition": Int(h(DeadLetterHeader.sourcePartition)) ?? -1, "sourceOffset": Int(h(DeadLetterHeader.sourceOffset)) ?? -1,
                        "key": message.key.map { String(decoding: $0, as: UTF8.self) } ?? NSNull(), "valuePreview": String(decoding: message.value.prefix(200), as: UTF8.self), "bytes": message.value.count,
                    ]
                    emit(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
                } else {
                    emit("\(h(DeadLetterHeader.sourceTopic))[\(h(DeadLetterHeader.sourcePartition))]@\(h(DeadLetterHeader.sourceOffset))  \(h(DeadLetterHeader.reason)): \(h(DeadLetterHeader.detail))  (\(message.value.count) bytes)")
                }
            }
            if !json { emit("\(min(messages.count, limit)) of \(messages.count) dead letters shown") }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-produce dead letters to their source topic (after fixing the producer or the aggregator).")
        @OptionGroup var kafka: KafkaOptions
        @Option(name: .customLong("dlq-topic"), help: "Dead-letter topic (env KAFKA_DLQ_TOPIC).") var topic: String?
        @Option(help: "Only this reason.") var reason: String?
        @Option(help: "Produce to this topic instead of each letter's source topic.") var to: String?
        @Flag(name: .customLong("dry-run"), help: "Only count what would be replayed.") var dryRun = false

        func run() async throws {
            let topic = topic ?? env("KAFKA_DLQ_TOPIC") ?? "risk-assessment-results.dlq"
            let messages = try await kafka.readToEnd(topic: topic).filter { reason == nil || DeadLetterCommand.header($0, DeadLetterHeader.reason) == reason }
            if dryRun { emit("\(messages.count) dead letters would be replayed"); return }
            var config = try kafka.configuration(group: "unused")
            config["group.id"] = nil
            config["enable.auto.commit"] = nil
            config["fetch.wait.max.ms"] = nil
            let producer = try KafkaProducer(configuration: config)
            for message in messages {
                let destination = to ?? DeadLetterCommand.header(message, DeadLetterHeader.sourceTopic)
                guard !destination.isEmpty else { throw ValidationError("dead letter at \(topic)[\(message.partition)]@\(message.offset) has no source topic; use --to") }
                try await producer.send(topic: destination, key: message.key, value: message.value, headers: [KafkaHeader("dlq.replayed-from", "\(topic)[\(message.partition)]@\(message.offset)")])
            }
            emit("replayed \(messages.count) dead letters")
        }
    }
}

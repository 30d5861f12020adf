import ServiceCLI
import Aggregator
import ArgumentParser
import Foundation
import KafkaClient
import TrafficModel

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

    /// A letter holding only the first bytes of its message (the whole was refused).
    static func isTruncated(_ message: KafkaMessage) -> Bool {
        header(message, DeadLetterHeader.truncated) == "true"
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List dead letters with their reason and source position.")
        @OptionGroup var kafka: KafkaOptions
        @Option(name: .customLong("dlq-topic"), help: "Dead-letter topic (env KAFKA_DLQ_TOPIC).") var topic: String?
        @Option(help: "At most this many.") var limit = 100
        @Option(help: ArgumentHelp("Only this reason (\(InputRejection.Reason.allCases.map(\.rawValue).joined(separator: ", "))).")) var reason: String?
        @Flag(help: "One JSON object per line.") var json = false

        func run() async throws {
            let topic = setting(topic, env: "KAFKA_DLQ_TOPIC") ?? "risk-assessment-results.dlq"
            let messages = try await kafka.readToEnd(topic: topic).filter { reason == nil || DeadLetterCommand.header($0, DeadLetterHeader.reason) == reason }
            for message in messages.prefix(limit) {
                let h = { DeadLetterCommand.header(message, $0) }
                if json {
                    let object: [String: Any] = [
                        "dlqPartition": message.partition, "dlqOffset": message.offset, "reason": h(DeadLetterHeader.reason), "detail": h(DeadLetterHeader.detail),
                        "sourceTopic": h(DeadLetterHeader.sourceTopic), "sourcePartition": Int(h(DeadLetterHeader.sourcePartition)) ?? -1, "sourceOffset": Int(h(DeadLetterHeader.sourceOffset)) ?? -1,
                        "key": message.key.map { String(decoding: $0, as: UTF8.self) } ?? NSNull(), "valuePreview": String(decoding: message.value.prefix(200), as: UTF8.self), "bytes": message.value.count,
                        "truncated": DeadLetterCommand.isTruncated(message),
                    ]
                    var full = object
                    if DeadLetterCommand.isTruncated(message) {
                        full["originalBytes"] = Int(h(DeadLetterHeader.originalSize)) ?? -1
                        full["originalSHA256"] = h(DeadLetterHeader.originalSHA256)
                    }
                    emit(String(decoding: try JSONSerialization.data(withJSONObject: full, options: [.sortedKeys]), as: UTF8.self))
                } else {
                    let size = DeadLetterCommand.isTruncated(message)
                        ? "TRUNCATED to \(message.value.count) of \(h(DeadLetterHeader.originalSize)) bytes, sha256 \(h(DeadLetterHeader.originalSHA256))"
                        : "\(message.value.count) bytes"
                    emit("\(h(DeadLetterHeader.sourceTopic))[\(h(DeadLetterHeader.sourcePartition))]@\(h(DeadLetterHeader.sourceOffset))  \(h(DeadLetterHeader.reason)): \(h(DeadLetterHeader.detail))  (\(size))")
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
        @Flag(name: .customLong("include-truncated"), help: "Also replay truncated letters (only their first bytes; the original is gone).") var includeTruncated = false

        func run() async throws {
            let topic = setting(topic, env: "KAFKA_DLQ_TOPIC") ?? "risk-assessment-results.dlq"
            let matching = try await kafka.readToEnd(topic: topic).filter { reason == nil || DeadLetterCommand.header($0, DeadLetterHeader.reason) == reason }
            let messages = includeTruncated ? matching : matching.filter { !DeadLetterCommand.isTruncated($0) }
            let skipped = matching.count - messages.count
            if skipped > 0 { emit("skipping \(skipped) truncated dead letters (only their first bytes were kept; --include-truncated replays them anyway)") }
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

import Foundation
import KafkaClient
import TrafficModel

/// Copies rejected messages to the dead-letter topic: original key and bytes, the reason and
/// the source position in headers. `write` returns once every copy is acknowledged, so the
/// source offsets can be committed without losing bad input.
struct DeadLetterWriter: Sendable {
    let producer: KafkaProducer
    let topic: String

    /// Header names, shared with `traffic-aggregator dlq`.
    enum Header {
        static let reason = "dlq.reason"
        static let detail = "dlq.detail"
        static let sourceTopic = "dlq.source.topic"
        static let sourcePartition = "dlq.source.partition"
        static let sourceOffset = "dlq.source.offset"
        static let time = "dlq.time"
    }

    func write(_ letters: [DeadLetter]) async throws(KafkaError) {
        let now = String(Int64(Date().timeIntervalSince1970 * 1000))
        let result: Result<Void, KafkaError> = await withTaskGroup(of: Result<KafkaDeliveryReport, KafkaError>.self) { group in
            for letter in letters {
                let headers = [
                    KafkaHeader(Header.reason, letter.rejection.reason.rawValue),
                    KafkaHeader(Header.detail, letter.rejection.detail),
                    KafkaHeader(Header.sourceTopic, letter.source.topic),
                    KafkaHeader(Header.sourcePartition, String(letter.source.partition)),
                    KafkaHeader(Header.sourceOffset, String(letter.source.offset)),
                    KafkaHeader(Header.time, now),
                ]
                group.addTask {
                    do throws(KafkaError) {
                        return .success(try await producer.send(topic: topic, key: letter.source.key, value: letter.source.value, headers: headers))
                    } catch {
                        return .failure(error)
                    }
                }
            }
            for await outcome in group {
                if case .failure(let error) = outcome { return .failure(error) }
            }
            return .success(())
        }
        try result.get()
    }
}

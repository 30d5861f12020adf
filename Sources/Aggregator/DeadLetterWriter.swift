import Foundation
import KafkaClient
import TrafficModel

/// Copies rejected messages to the dead-letter topic: original key and bytes, the reason and
/// the source position in headers. `write` returns once every copy is acknowledged, so the
/// source offsets can be committed without losing bad input.
/// The headers of a dead letter, written by the aggregator and read by `traffic-aggregator dlq`.
public enum DeadLetterHeader {
    public static let reason = "dlq.reason"
    public static let detail = "dlq.detail"
    public static let sourceTopic = "dlq.source.topic"
    public static let sourcePartition = "dlq.source.partition"
    public static let sourceOffset = "dlq.source.offset"
    public static let time = "dlq.time"
}

struct DeadLetterWriter: Sendable {
    private typealias Header = DeadLetterHeader

    let producer: KafkaProducer
    let topic: String

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

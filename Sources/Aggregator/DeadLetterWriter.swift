import Foundation
import KafkaClient
import TrafficModel
import Digest

/// The headers of a dead letter, written by the aggregator and read by `traffic-aggregator dlq`.
public enum DeadLetterHeader {
    public static let reason = "dlq.reason"
    public static let detail = "dlq.detail"
    public static let sourceTopic = "dlq.source.topic"
    public static let sourcePartition = "dlq.source.partition"
    public static let sourceOffset = "dlq.source.offset"
    public static let time = "dlq.time"
    /// `true` when the value is only the first bytes of the original (the whole was refused).
    public static let truncated = "dlq.truncated"
    /// Size in bytes of the original value (on truncated letters).
    public static let originalSize = "dlq.original.size"
    /// SHA-256 (hex) of the original value (on truncated letters; absent when libcrypto could
    /// not compute it, which the aggregator counts in `aggregator_dead_letters_undigested_total`).
    public static let originalSHA256 = "dlq.original.sha256"
}

/// Copies rejected messages to the dead-letter topic: original key and bytes, the reason and
/// the source position in headers.
///
/// A letter the producer or broker refuses for good (too large, an invalid record) is written
/// again truncated to `truncatedBytes`, with headers naming the original size and SHA-256; if
/// even that is refused it is reported as lost, so one message can never stall the stream.
/// Transient failures (broker down, timeouts) are reported as such, for the caller to retry.
struct DeadLetterWriter: Sendable {
    private typealias Header = DeadLetterHeader

    var producer: KafkaProducer
    let topic: String
    /// How much of a refused letter's value the truncated copy keeps.
    var truncatedBytes = 64 * 1024
    /// The hex digest a truncated letter names its original by (SHA-256; replaced in tests).
    var digest: @Sendable ([UInt8]) throws(DigestError) -> String = { bytes throws(DigestError) in try SHA256.hexDigest(bytes) }

    /// What became of one letter.
    enum Outcome: Sendable {
        case delivered
        /// Written truncated after the whole was refused with this error; without the
        /// original's SHA-256 header when the digest could not be computed (`digestFailure`).
        case truncated(KafkaError, digestFailure: DigestError?)
        /// Refused whole and truncated: not written, and not worth retrying.
        case lost(KafkaError)
        /// A transient failure: retry later.
        case failed(KafkaError)
    }

    /// Writes every letter concurrently and reports each one's outcome, index-aligned.
    func write(_ letters: [DeadLetter]) async -> [Outcome] {
        let now = String(Int64(Date().timeIntervalSince1970 * 1000))
        return await withTaskGroup(of: (Int, Outcome).self) { group in
            for (index, letter) in letters.enumerated() {
                group.addTask { (index, await write(letter, time: now)) }
            }
            var outcomes = [Outcome](repeating: .delivered, count: letters.count)
            for await (index, outcome) in group { outcomes[index] = outcome }
            return outcomes
        }
    }

    private func write(_ letter: DeadLetter, time: String) async -> Outcome {
        let headers = [
            KafkaHeader(Header.reason, letter.rejection.reason.rawValue),
            KafkaHeader(Header.detail, letter.rejection.detail),
            KafkaHeader(Header.sourceTopic, letter.source.topic),
            KafkaHeader(Header.sourcePartition, String(letter.source.partition)),
            KafkaHeader(Header.sourceOffset, String(letter.source.offset)),
            KafkaHeader(Header.time, time),
        ]
        let whole: KafkaError
        do throws(KafkaError) {
            try await producer.send(topic: topic, key: letter.source.key, value: letter.source.value, headers: headers)
            return .delivered
        } catch {
            guard error.isPermanentForMessage else { return .failed(error) }
            whole = error
        }
        let value = letter.source.value
        var truncatedHeaders = headers + [
            KafkaHeader(Header.truncated, "true"),
            KafkaHeader(Header.originalSize, String(value.count)),
        ]
        // A letter whose digest cannot be computed still goes out: its size and first bytes
        // are worth more than no letter at all.
        var digestFailure: DigestError?
        do throws(DigestError) {
            truncatedHeaders.append(KafkaHeader(Header.originalSHA256, try digest(value)))
        } catch {
            digestFailure = error
        }
        do throws(KafkaError) {
            try await producer.send(topic: topic, key: letter.source.key.map { Array($0.prefix(1024)) }, value: Array(value.prefix(truncatedBytes)), headers: truncatedHeaders)
            return .truncated(whole, digestFailure: digestFailure)
        } catch {
            return error.isPermanentForMessage ? .lost(error) : .failed(error)
        }
    }
}

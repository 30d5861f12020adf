import KafkaClient
import Logging
import Synchronization
import TrafficModel

/// Dead letters from rejected to written: each rejection is counted and logged, then written
/// through the `DeadLetterWriter`; transient failures are retried through the outage retry
/// until every letter is written, written truncated or lost for good (so a permanent refusal
/// never stalls the stream). A producer that failed fatally is replaced.
final class DeadLetterDelivery: Sendable {
    /// Replaced when its producer reports a fatal error (an idempotent producer then refuses
    /// everything).
    private let writer: Mutex<DeadLetterWriter>
    private let makeProducer: @Sendable () throws(KafkaError) -> KafkaProducer
    private let retry: OutageRetry
    private let metrics: AggregatorMetrics
    private let log: RateLimitedLog

    /// `makeProducer` makes the replacement for a producer that failed fatally.
    init(writer: DeadLetterWriter, makeProducer: @escaping @Sendable () throws(KafkaError) -> KafkaProducer, retry: OutageRetry, metrics: AggregatorMetrics, log: RateLimitedLog) {
        self.writer = Mutex(writer)
        self.makeProducer = makeProducer
        self.retry = retry
        self.metrics = metrics
        self.log = log
    }

    /// Counts, logs and writes `letters`; messages polled while retrying are appended to
    /// `extra`. False when a stop was requested before every letter was settled.
    func deliver(_ letters: [DeadLetter], polled extra: inout [KafkaMessage]) async -> Bool {
        guard !letters.isEmpty else { return true }
        for letter in letters {
            metrics.deadLettered[letter.rejection.reason]?.increment()
            log.log(.warning, key: letter.rejection.reason.rawValue, "dead-lettered \(letter.source.position): \(letter.rejection)")
        }
        var pending = letters
        let done: Void? = await retry.run("dead-letter delivery", touchesRedis: false, polled: &extra) { () async throws -> Void in
            let outcomes = await writer.withLock { $0 }.write(pending)
            var failed: [DeadLetter] = []
            var firstError: KafkaError?
            for (letter, outcome) in zip(pending, outcomes) {
                switch outcome {
                case .delivered:
                    break
                case .truncated(let error, let digestFailure):
                    metrics.deadLettersTruncated.increment()
                    log.log(.warning, key: "dlq-truncated", "dead letter \(letter.source.position) (\(letter.source.value.count) bytes) refused whole (\(error.codeName)); written truncated with its size\(digestFailure == nil ? " and SHA-256" : "")")
                    if let digestFailure {
                        metrics.deadLettersUndigested.increment()
                        log.log(.error, key: "dlq-undigested", "dead letter \(letter.source.position) written truncated without its original's SHA-256: \(digestFailure)")
                    }
                case .lost(let error):
                    metrics.deadLettersLost[letter.rejection.reason]?.increment()
                    log.log(.error, key: "dlq-lost", "dead letter \(letter.source.position) (\(letter.rejection.reason.rawValue), \(letter.source.value.count) bytes) refused even truncated; skipped: \(error)")
                case .failed(let error):
                    failed.append(letter)
                    firstError = firstError ?? error
                }
            }
            if let firstError, firstError.isFatal { replaceProducer(after: firstError) }
            pending = failed
            if let firstError { throw firstError }
        }
        return done != nil
    }

    /// A fatal producer error poisons the producer for good: make a new one (the retry then
    /// uses it); the writer's other settings stay.
    private func replaceProducer(after error: KafkaError) {
        do throws(KafkaError) {
            let producer = try makeProducer()
            writer.withLock { $0.producer = producer }
            log.logger.error("dead-letter producer failed fatally (\(error)); replaced it with a new one")
        } catch let replacement {
            log.logger.error("dead-letter producer failed fatally (\(error)) and a new one could not be made: \(replacement)")
        }
    }
}

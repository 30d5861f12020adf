import Digest
import Foundation
import KafkaClient
import Logging
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator

/// Dead-letter delivery on its own, against the embedded broker: what happens when the
/// original's SHA-256 cannot be computed (libcrypto out of memory).
@Suite struct DeadLetterDeliveryTests {
    @Test func aLetterWhoseDigestFailsStillGoesOutTruncatedAndIsCounted() async throws {
        let topic = uniqueName("dlq")
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: 1)])
        // The letter is refused whole (over this producer's limit), so it is written truncated.
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration(["message.max.bytes": "200000"]))
        var writer = DeadLetterWriter(producer: producer, topic: topic)
        let failure = DigestError(operation: .sha256, code: 0, reason: "")
        writer.digest = { _ throws(DigestError) in throw failure }
        let metrics = AggregatorMetrics()
        let log = RateLimitedLog(logger: Logger(label: "test.dlq"))
        let consumer = try KafkaConsumer(configuration: kafka.consumerConfiguration(group: uniqueName("group")))
        let retry = OutageRetry(consumer: consumer, batchSize: 10, health: AggregatorHealth(redisRequired: false, metrics: metrics),
                                metrics: metrics, log: log, stop: StopRequest())
        let delivery = DeadLetterDelivery(writer: writer, makeProducer: { () throws(KafkaError) in try KafkaProducer(configuration: kafka.producerConfiguration()) },
                                          retry: retry, metrics: metrics, log: log)
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: 500_000)
        let letter = DeadLetter(source: KafkaMessage(topic: "results", partition: 0, offset: 7, key: Array("4".utf8), value: value),
                                rejection: InputRejection(.malformedJSON, "not JSON"))
        var polled: [KafkaMessage] = []
        #expect(await delivery.deliver([letter], polled: &polled))

        let rendered = String(decoding: metrics.render(), as: UTF8.self)
        #expect(rendered.contains("aggregator_dead_letters_truncated_total 1"))
        #expect(rendered.contains("aggregator_dead_letters_undigested_total 1"))
        let reader = try KafkaConsumer(configuration: kafka.consumerConfiguration(group: uniqueName("reader")))
        try reader.subscribe(topics: [topic])
        var letters: [KafkaMessage] = []
        try await waitUntil("the dead letter arrived", timeout: .seconds(30)) {
            letters += try await reader.nextBatch(maxMessages: 10, timeout: .milliseconds(100))
            return !letters.isEmpty
        }
        let written = try #require(letters.first)
        #expect(written.value == Array(value.prefix(64 * 1024)))
        #expect(written.header(DeadLetterHeader.truncated) == Array("true".utf8))
        #expect(written.header(DeadLetterHeader.originalSize) == Array("500000".utf8))
        #expect(written.header(DeadLetterHeader.originalSHA256) == nil, "no digest rather than a wrong one")
        await reader.close()
        await consumer.close()
    }
}

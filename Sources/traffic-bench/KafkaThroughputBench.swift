import Durations
import ArgumentParser
import Foundation
import KafkaClient

/// Produce and consume throughput through the embedded broker.
struct KafkaThroughputBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kafka",
        abstract: "Produce → consume throughput through the embedded broker (librdkafka mock cluster)."
    )

    @Option(help: "Messages to produce and consume.") var messages = 200_000
    @Option(help: "Message value size in bytes.") var size = 1_024
    @Option(help: "Partitions; keep each under ~4 MiB of the run (the mock keeps ~5 MiB per partition).") var partitions = 64
    @Option(help: "Messages per consumer batch.") var batch = 1_000

    func run() async throws {
        let bytesPerPartition = messages * size / partitions
        guard bytesPerPartition <= 4 << 20 else {
            throw ValidationError("\(bytesPerPartition >> 20) MiB per partition: the mock would drop data; raise --partitions")
        }
        let topic = "bench-\(UUID().uuidString.prefix(8))"
        let kafka = try await EmbeddedKafka.start(topics: [.init(topic, partitions: partitions)])
        report("embedded broker \(kafka.bootstrapServers), \(messages) messages of \(size) B over \(partitions) partitions")
        let producer = try KafkaProducer(configuration: kafka.producerConfiguration(["linger.ms": "5", "queue.buffering.max.messages": "500000"]))
        let value = [UInt8](repeating: UInt8(ascii: "v"), count: size)
        let clock = ContinuousClock()

        let produceStart = clock.now
        for i in 0..<messages {
            let key = Array(String(i % 10_000).utf8) // many keys: even spread over partitions
            while case .failure(let error) = Result(catching: { () throws(KafkaError) in try producer.produce(topic: topic, key: key, value: value) }) {
                guard error.kind == .queueFull else { throw error }
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        try await producer.flush(timeout: .seconds(120))
        let produceSeconds = (clock.now - produceStart).inSeconds
        guard producer.unreportedFailures == 0 else { throw ValidationError("\(producer.unreportedFailures) deliveries failed") }

        let consumer = try KafkaConsumer(configuration: kafka.consumerConfiguration(group: "bench-\(topic)"))
        try consumer.subscribe(topics: [topic])
        // Wait for the group join outside the measurement: it is the mock's, not the client's.
        var received = 0
        while received == 0 {
            received += try await consumer.nextBatch(maxMessages: batch, timeout: .milliseconds(100)).count
        }
        let consumeStart = clock.now
        while received < messages {
            let got = try await consumer.nextBatch(maxMessages: batch, timeout: .seconds(5))
            if got.isEmpty {
                var marks: [String] = []
                for p in 0..<Int32(partitions) {
                    let (low, high) = try await consumer.watermarks(topic: topic, partition: p)
                    marks.append("\(p):\(low)-\(high)")
                }
                throw ValidationError("consumer stalled at \(received) of \(messages); watermarks \(marks.joined(separator: " ")); assigned \(try consumer.assignment().count)")
            }
            received += got.count
            try consumer.storeOffsets(for: got)
        }
        let consumeSeconds = (clock.now - consumeStart).inSeconds
        await consumer.close()

        let megabytes = Double(messages * size) / 1_048_576
        report(String(format: "produce (delivery-acknowledged): %9.0f msgs/s  %7.1f MB/s", Double(messages) / produceSeconds, megabytes / produceSeconds))
        report(String(format: "consume (offsets stored):        %9.0f msgs/s  %7.1f MB/s", Double(messages) / consumeSeconds, megabytes / consumeSeconds))
    }
}

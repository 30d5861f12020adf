import CRdKafka
import Durations
import Dispatch

/// Cluster metadata look-ups shared by consumer and producer.
enum KafkaMetadata {
    static func partitionCount(handle: KafkaHandle, queue: DispatchQueue, topic: String, timeout: Duration) async throws(KafkaError) -> Int {
        let result: Result<Int, KafkaError> = await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: partitionCountBlocking(handle: handle, topic: topic, timeout: timeout))
            }
        }
        return try result.get()
    }

    private static func partitionCountBlocking(handle: KafkaHandle, topic: String, timeout: Duration) -> Result<Int, KafkaError> {
        guard let topicHandle = rd_kafka_topic_new(handle.pointer, topic, nil) else {
            return .failure(KafkaError(kind: .request, message: "cannot create a handle for topic \(topic)"))
        }
        defer { rd_kafka_topic_destroy(topicHandle) }
        var metadata: UnsafePointer<rd_kafka_metadata>?
        let error = rd_kafka_metadata(handle.pointer, 0, topicHandle, &metadata, Int32(clamping: timeout.wholeMilliseconds))
        guard error == RD_KAFKA_RESP_ERR_NO_ERROR, let metadata else {
            return .failure(KafkaError(kind: .request, error: error, context: "metadata of \(topic)"))
        }
        defer { rd_kafka_metadata_destroy(metadata) }
        guard metadata.pointee.topic_cnt > 0 else {
            return .failure(KafkaError(kind: .request, message: "metadata of \(topic): topic not in reply"))
        }
        let entry = metadata.pointee.topics[0]
        if entry.err != RD_KAFKA_RESP_ERR_NO_ERROR {
            return .failure(KafkaError(kind: .request, error: entry.err, context: "metadata of \(topic)"))
        }
        return .success(Int(entry.partition_cnt))
    }
}

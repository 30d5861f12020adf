import CRdKafka
import Durations
import Dispatch
public import Logging
import Synchronization

/// A consumer in a consumer group with manual offset handling.
///
/// Offsets: `enable.auto.offset.store` is forced to `false`. An offset becomes eligible for
/// commit only when the application calls `storeOffsets(for:)` after it has finished with the
/// messages; stored offsets are committed every `auto.commit.interval.ms` (default 1 s here),
/// before partitions are revoked in a rebalance, on `commit()` and on `close()`. A crash
/// therefore re-delivers at most the messages processed since the last commit: at least once.
///
/// Threads: `nextBatch` runs the blocking `rd_kafka_consumer_poll` on the consumer's own serial
/// queue, never on Swift's cooperative pool; rebalance callbacks run there too, inside poll.
/// All methods may be called from any task (`Sendable`); `nextBatch` calls are serialised.
public final class KafkaConsumer: Sendable {
    private let handle: KafkaHandle
    private let pollQueue: DispatchQueue
    private let controlQueue: DispatchQueue
    private let closed = Mutex(false)
    private let eventContinuation: AsyncStream<KafkaClientEvent>.Continuation
    /// Rebalances, errors and statistics, bounded (newest 1,000 kept if nobody reads).
    public let events: AsyncStream<KafkaClientEvent>
    public let configuration: KafkaConfiguration

    /// Creates the consumer. `group.id` and `bootstrap.servers` must be set.
    public init(configuration: KafkaConfiguration, logger: Logger = Logger(label: "kafka.consumer")) throws(KafkaError) {
        var config = configuration
        guard config["group.id"] != nil else {
            throw KafkaError(kind: .configuration, message: "group.id is required for a consumer")
        }
        config["enable.auto.offset.store"] = "false"
        if config["auto.commit.interval.ms"] == nil { config["auto.commit.interval.ms"] = "1000" }
        if config["auto.offset.reset"] == nil { config["auto.offset.reset"] = "earliest" }
        self.configuration = config
        let (stream, continuation) = AsyncStream<KafkaClientEvent>.makeStream(bufferingPolicy: .bufferingNewest(1000))
        events = stream
        eventContinuation = continuation
        let context = ConsumerContext(logger: logger) { continuation.yield($0) }
        handle = try KafkaHandle(type: RD_KAFKA_CONSUMER, configuration: config, context: context) { conf in
            rd_kafka_conf_set_rebalance_cb(conf, kafkaRebalanceCallback)
        }
        rd_kafka_poll_set_consumer(handle.pointer)
        let label = config["group.id"] ?? "consumer"
        pollQueue = DispatchQueue(label: "kafka-consumer.poll.\(label)")
        controlQueue = DispatchQueue(label: "kafka-consumer.control.\(label)")
    }

    deinit {
        eventContinuation.finish()
    }

    /// Subscribes to topics (replacing any earlier subscription); partitions arrive by rebalance.
    public func subscribe(topics: [String]) throws(KafkaError) {
        let list = KafkaTopicPartition.makeNative(topics.map { KafkaTopicPartition(topic: $0, partition: RD_KAFKA_PARTITION_UA) })
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let error = rd_kafka_subscribe(handle.pointer, list)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(kind: .consume, error: error, context: "subscribe to \(topics)")
        }
    }

    /// Waits up to `timeout` for the first message, then takes what is already fetched, up to
    /// `maxMessages`; with `linger` it keeps waiting that long for more. Returns `[]` on timeout.
    /// Per-message errors (broker gone, unknown topic) are reported on `events`, not returned.
    public func nextBatch(maxMessages: Int, timeout: Duration, linger: Duration = .zero) async throws(KafkaError) -> [KafkaMessage] {
        let handle = self.handle
        let result: Result<[KafkaMessage], KafkaError> = await withCheckedContinuation { continuation in
            pollQueue.async {
                if self.closed.withLock({ $0 }) {
                    continuation.resume(returning: .failure(KafkaError(kind: .closed, message: "consumer closed")))
                    return
                }
                continuation.resume(returning: .success(Self.poll(handle, maxMessages: maxMessages, timeout: timeout, linger: linger)))
            }
        }
        return try result.get()
    }

    private static func poll(_ handle: KafkaHandle, maxMessages: Int, timeout: Duration, linger: Duration) -> [KafkaMessage] {
        var batch: [KafkaMessage] = []
        let context = handle.context as? ConsumerContext
        let clock = ContinuousClock()
        let start = clock.now
        var lingerEnd: ContinuousClock.Instant?
        while batch.count < maxMessages {
            let now = clock.now
            let waitUntil = lingerEnd ?? (start + timeout)
            let remaining = waitUntil - now
            let ms: Int32 = remaining <= .zero ? 0 : Int32(min(remaining.wholeMilliseconds, 60_000))
            let polled = rd_kafka_consumer_poll(handle.pointer, ms)
            dropRevoked(from: &batch, context: context)
            guard let message = polled else {
                if ms == 0 { break }
                continue
            }
            defer { rd_kafka_message_destroy(message) }
            let error = message.pointee.err
            if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                if error != RD_KAFKA_RESP_ERR__PARTITION_EOF {
                    // The payload of an error message is not NUL-terminated: librdkafka's accessor
                    // gives the text (or the error's own description).
                    let text = String(cString: rd_kafka_message_errstr(message))
                    handle.context.onEvent(.error(KafkaError(kind: .consume, error: error, context: text), fatal: false))
                }
                continue
            }
            batch.append(KafkaMessage(copying: message))
            if lingerEnd == nil { lingerEnd = linger > .zero ? clock.now + linger : clock.now }
        }
        return batch
    }

    /// Drops the batch's messages of partitions revoked during the last `rd_kafka_consumer_poll`:
    /// they belong to their next owner now, which starts after the committed offset. (What that
    /// call returned, and anything later, comes from partitions assigned after the revoke.)
    static func dropRevoked(from batch: inout [KafkaMessage], context: ConsumerContext?) {
        guard let context else { return }
        let revoked = context.revokedDuringPoll.withLock { revoked -> Set<KafkaTopicPartition> in
            defer { revoked.removeAll() }
            return revoked
        }
        if revoked.isEmpty || batch.isEmpty { return }
        batch.removeAll { revoked.contains(KafkaTopicPartition(topic: $0.topic, partition: $0.partition)) }
    }

    /// Sets a function called on the poll thread when partitions are about to be revoked, before
    /// the stored offsets are committed for the next owner. An application that processes batches
    /// asynchronously uses it to wait (briefly) for the work in flight and store its offsets.
    public func beforeRevoke(_ hook: @escaping @Sendable ([KafkaTopicPartition]) -> Void) {
        (handle.context as? ConsumerContext)?.beforeRevoke.withLock { $0 = hook }
    }

    /// Marks messages as processed: for each partition the offset after the highest message is
    /// stored and will be committed. Partitions no longer assigned are skipped.
    public func storeOffsets(for messages: [KafkaMessage]) throws(KafkaError) {
        var next: [KafkaTopicPartition: Int64] = [:]
        for message in messages {
            let key = KafkaTopicPartition(topic: message.topic, partition: message.partition)
            next[key] = max(next[key] ?? 0, message.offset + 1)
        }
        try storeOffsets(next.map { KafkaTopicPartition(topic: $0.key.topic, partition: $0.key.partition, offset: $0.value) })
    }

    /// Stores explicit next-offsets (the offset of the next message to read, per partition).
    public func storeOffsets(_ offsets: [KafkaTopicPartition]) throws(KafkaError) {
        if offsets.isEmpty { return }
        let list = KafkaTopicPartition.makeNative(offsets)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let error = rd_kafka_offsets_store(handle.pointer, list)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR && error != RD_KAFKA_RESP_ERR__STATE {
            throw KafkaError(kind: .commit, error: error, context: "store offsets \(offsets)")
        }
    }

    /// Commits stored offsets now and waits for the broker's answer.
    public func commit() async throws(KafkaError) {
        let handle = self.handle
        let result: Result<Void, KafkaError> = await withCheckedContinuation { continuation in
            controlQueue.async {
                let error = rd_kafka_commit(handle.pointer, nil, 0)
                if error == RD_KAFKA_RESP_ERR_NO_ERROR || error == RD_KAFKA_RESP_ERR__NO_OFFSET {
                    continuation.resume(returning: .success(()))
                } else {
                    continuation.resume(returning: .failure(KafkaError(kind: .commit, error: error, context: "commit")))
                }
            }
        }
        try result.get()
    }

    /// The partitions currently assigned.
    public func assignment() throws(KafkaError) -> [KafkaTopicPartition] {
        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
        let error = rd_kafka_assignment(handle.pointer, &list)
        defer { if let list { rd_kafka_topic_partition_list_destroy(list) } }
        if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(kind: .consume, error: error, context: "assignment") }
        return KafkaTopicPartition.list(list)
    }

    /// Each assigned partition's fetch position (nil when the consumer has none yet) and end
    /// (high watermark last seen in fetch responses); no broker round trip. The fetch position is
    /// how far the consumer has read, not how far its owner has processed.
    public func positions() throws(KafkaError) -> [KafkaTopicPartition: (position: Int64?, end: Int64)] {
        let assigned = try assignment()
        if assigned.isEmpty { return [:] }
        let list = KafkaTopicPartition.makeNative(assigned)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let error = rd_kafka_position(handle.pointer, list)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(kind: .consume, error: error, context: "position") }
        var result: [KafkaTopicPartition: (position: Int64?, end: Int64)] = [:]
        for entry in KafkaTopicPartition.list(list) {
            var low: Int64 = -1
            var high: Int64 = -1
            guard rd_kafka_get_watermark_offsets(handle.pointer, entry.topic, entry.partition, &low, &high) == RD_KAFKA_RESP_ERR_NO_ERROR, high >= 0 else { continue }
            result[KafkaTopicPartition(topic: entry.topic, partition: entry.partition)] = (entry.offset, high)
        }
        return result
    }

    /// Stops fetching from the partitions (keeps group membership: keep calling `nextBatch`).
    public func pause(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        try changePause(partitions, pause: true)
    }

    /// Resumes fetching from paused partitions.
    public func resume(_ partitions: [KafkaTopicPartition]) throws(KafkaError) {
        try changePause(partitions, pause: false)
    }

    private func changePause(_ partitions: [KafkaTopicPartition], pause: Bool) throws(KafkaError) {
        if partitions.isEmpty { return }
        let list = KafkaTopicPartition.makeNative(partitions)
        defer { rd_kafka_topic_partition_list_destroy(list) }
        let error = pause ? rd_kafka_pause_partitions(handle.pointer, list) : rd_kafka_resume_partitions(handle.pointer, list)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(kind: .consume, error: error, context: pause ? "pause" : "resume") }
    }

    /// Rewinds a partition to an offset (used to re-read messages that were fetched but not
    /// processed, e.g. after a pause).
    public func seek(_ partition: KafkaTopicPartition) throws(KafkaError) {
        let list = KafkaTopicPartition.makeNative([partition])
        defer { rd_kafka_topic_partition_list_destroy(list) }
        if let error = rd_kafka_seek_partitions(handle.pointer, list, 5000) {
            defer { rd_kafka_error_destroy(error) }
            throw KafkaError(kind: .consume, code: rd_kafka_error_code(error).rawValue, message: "seek \(partition): \(String(cString: rd_kafka_error_string(error)))")
        }
    }

    /// The group's committed offsets for the given partitions, asked of the coordinator.
    public func committedOffsets(_ partitions: [KafkaTopicPartition], timeout: Duration = .seconds(5)) async throws(KafkaError) -> [KafkaTopicPartition] {
        let handle = self.handle
        let result: Result<[KafkaTopicPartition], KafkaError> = await withCheckedContinuation { continuation in
            controlQueue.async {
                let list = KafkaTopicPartition.makeNative(partitions)
                defer { rd_kafka_topic_partition_list_destroy(list) }
                let error = rd_kafka_committed(handle.pointer, list, Int32(clamping: timeout.wholeMilliseconds))
                if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                    continuation.resume(returning: .failure(KafkaError(kind: .request, error: error, context: "committed offsets")))
                } else {
                    continuation.resume(returning: .success(KafkaTopicPartition.list(list)))
                }
            }
        }
        return try result.get()
    }

    /// Low and high watermarks of a partition, asked of its leader.
    public func watermarks(topic: String, partition: Int32, timeout: Duration = .seconds(5)) async throws(KafkaError) -> (low: Int64, high: Int64) {
        let handle = self.handle
        let result: Result<(Int64, Int64), KafkaError> = await withCheckedContinuation { continuation in
            controlQueue.async {
                var low: Int64 = 0
                var high: Int64 = 0
                let error = rd_kafka_query_watermark_offsets(handle.pointer, topic, partition, &low, &high, Int32(clamping: timeout.wholeMilliseconds))
                if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                    continuation.resume(returning: .failure(KafkaError(kind: .request, error: error, context: "watermarks of \(topic)[\(partition)]")))
                } else {
                    continuation.resume(returning: .success((low, high)))
                }
            }
        }
        let (low, high) = try result.get()
        return (low, high)
    }

    /// The number of partitions of a topic, from cluster metadata.
    public func partitionCount(topic: String, timeout: Duration = .seconds(5)) async throws(KafkaError) -> Int {
        try await KafkaMetadata.partitionCount(handle: handle, queue: controlQueue, topic: topic, timeout: timeout)
    }

    /// Commits stored offsets, leaves the group (revoking partitions) and stops consuming.
    /// Idempotent. Waits for an in-flight `nextBatch` to return first.
    public func close() async {
        let handle = self.handle
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            pollQueue.async {
                let first = self.closed.withLock { wasClosed -> Bool in
                    defer { wasClosed = true }
                    return !wasClosed
                }
                if first {
                    // Leave the group first and serve the resulting revoke until nothing is
                    // assigned: librdkafka 2.0.2 aborts (rd_kafka_cgrp_terminated: assert
                    // !rd_kafka_assignment_in_progress) when a close meets an assignment still
                    // in progress, which a busy machine's rebalances make likely.
                    rd_kafka_unsubscribe(handle.pointer)
                    let deadline = ContinuousClock.now + .seconds(5)
                    while ContinuousClock.now < deadline {
                        var list: UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?
                        let assigned = rd_kafka_assignment(handle.pointer, &list) == RD_KAFKA_RESP_ERR_NO_ERROR ? Int(list?.pointee.cnt ?? 0) : 0
                        if let list { rd_kafka_topic_partition_list_destroy(list) }
                        if assigned == 0 { break }
                        if let message = rd_kafka_consumer_poll(handle.pointer, 50) { rd_kafka_message_destroy(message) }
                    }
                    let error = rd_kafka_consumer_close(handle.pointer)
                    if error != RD_KAFKA_RESP_ERR_NO_ERROR {
                        handle.context.logger.warning("consumer close: \(String(cString: rd_kafka_err2str(error)))")
                    }
                }
                continuation.resume()
            }
        }
    }
}

/// The consumer's callback state (see `KafkaCallbackContext` for why unchecked).
final class ConsumerContext: KafkaCallbackContext, @unchecked Sendable {
    /// Called on the poll thread before a revoke's commit (see `KafkaConsumer.beforeRevoke`).
    let beforeRevoke = Mutex<(@Sendable ([KafkaTopicPartition]) -> Void)?>(nil)
    /// Partitions revoked while a `nextBatch` call was polling; its messages of them are dropped.
    let revokedDuringPoll = Mutex<Set<KafkaTopicPartition>>([])
}

/// Assigns on assignment; on revocation commits what was stored first, so the next owner of the
/// partition starts right after the last processed message.
private let kafkaRebalanceCallback: @convention(c) (OpaquePointer?, rd_kafka_resp_err_t, UnsafeMutablePointer<rd_kafka_topic_partition_list_t>?, UnsafeMutableRawPointer?) -> Void = { handle, error, partitions, opaque in
    guard let handle, let context = KafkaHandle.context(of: opaque) else { return }
    let cooperative = String(cString: rd_kafka_rebalance_protocol(handle)) == "COOPERATIVE"
    let list = KafkaTopicPartition.list(partitions)
    switch error {
    case RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS:
        if cooperative {
            if let failure = rd_kafka_incremental_assign(handle, partitions) {
                context.logger.error("incremental assign failed: \(String(cString: rd_kafka_error_string(failure)))")
                rd_kafka_error_destroy(failure)
            }
        } else {
            rd_kafka_assign(handle, partitions)
        }
        context.logger.info("partitions assigned", metadata: ["partitions": "\(list)"])
        context.onEvent(.assigned(list))
    case RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS:
        let consumerContext = context as? ConsumerContext
        consumerContext?.revokedDuringPoll.withLock { $0.formUnion(list.map { KafkaTopicPartition(topic: $0.topic, partition: $0.partition) }) }
        if rd_kafka_assignment_lost(handle) == 0 {
            // Let the application finish and store what it is processing, so the commit below
            // includes it and the next owner does not process it again.
            if let hook = consumerContext?.beforeRevoke.withLock({ $0 }) { hook(list) }
            let commitError = rd_kafka_commit(handle, nil, 0)
            if commitError != RD_KAFKA_RESP_ERR_NO_ERROR && commitError != RD_KAFKA_RESP_ERR__NO_OFFSET {
                context.logger.warning("commit before revoke failed: \(String(cString: rd_kafka_err2str(commitError)))")
            }
        }
        if cooperative {
            if let failure = rd_kafka_incremental_unassign(handle, partitions) { rd_kafka_error_destroy(failure) }
        } else {
            rd_kafka_assign(handle, nil)
        }
        context.logger.info("partitions revoked", metadata: ["partitions": "\(list)"])
        context.onEvent(.revoked(list))
    default:
        context.logger.error("rebalance error: \(String(cString: rd_kafka_err2str(error)))")
        rd_kafka_assign(handle, nil)
        context.onEvent(.error(KafkaError(kind: .consume, error: error, context: "rebalance"), fatal: false))
    }
}

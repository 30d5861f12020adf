import CRdKafka
import Durations
import Foundation
import OwnThread
public import Logging
import Synchronization
import Backoff

/// Where a produced message landed.
public struct KafkaDeliveryReport: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var offset: Int64
}

/// A producer with delivery reports.
///
/// `produce` only enqueues (it never blocks); its completion handler runs on the producer's own
/// poll thread once the broker acknowledged the message or it finally failed. `send` awaits the
/// same report. `Sendable`: any thread or task may produce.
public final class KafkaProducer: Sendable {
    private let handle: KafkaHandle
    private let pollLoop: PollLoop
    private let context: ProducerContext
    public let configuration: KafkaConfiguration

    /// Creates the producer and starts its poll thread. `bootstrap.servers` must be set.
    public init(configuration: KafkaConfiguration, logger: Logger = Logger(label: "kafka.producer"), onEvent: @escaping @Sendable (KafkaClientEvent) -> Void = { _ in }) throws(KafkaError) {
        self.configuration = configuration
        let context = ProducerContext(logger: logger, onEvent: onEvent)
        self.context = context
        handle = try KafkaHandle(type: RD_KAFKA_PRODUCER, configuration: configuration, context: context) { conf in
            rd_kafka_conf_set_dr_msg_cb(conf, kafkaDeliveryCallback)
        }
        let loop = PollLoop(handle: handle)
        pollLoop = loop
        let thread = Thread { loop.run() }
        thread.name = "kafka-producer-poll"
        thread.start()
    }

    /// A dropped producer stops its poll thread, which first serves every report still due:
    /// what is queued gets `closeBudget` to be delivered, the rest is purged and its completion
    /// handlers run with the purge error. Nothing here waits, so the last reference may go on
    /// any thread — the poll thread itself included (from a completion handler).
    deinit {
        pollLoop.stop()
    }

    /// How long a dropped producer keeps delivering what is queued before failing it.
    public static let closeBudget: Duration = .seconds(5)

    /// Messages whose final delivery failed and that had no completion handler.
    public var unreportedFailures: Int { context.failures.withLock { $0 } }

    /// Enqueues one message. `partition` nil lets the partitioner choose (by key hash).
    /// Throws `.queueFull` when `queue.buffering.max.messages` is reached.
    public func produce(topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = [], onDelivery: (@Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void)? = nil) throws(KafkaError) {
        let opaque = onDelivery.map { Unmanaged.passRetained(DeliveryBox($0)).toOpaque() }
        var nativeHeaders: OpaquePointer?
        if !headers.isEmpty {
            nativeHeaders = rd_kafka_headers_new(headers.count)
            for header in headers {
                if let value = header.value {
                    value.withUnsafeBytes { _ = rd_kafka_header_add(nativeHeaders, header.name, -1, $0.baseAddress, $0.count) }
                } else {
                    _ = rd_kafka_header_add(nativeHeaders, header.name, -1, nil, 0)
                }
            }
        }
        let error = value.withUnsafeBytes { valueBytes in
            if let key {
                return key.withUnsafeBytes { keyBytes in
                    traffic_kafka_produce(handle.pointer, topic, partition ?? RD_KAFKA_PARTITION_UA, keyBytes.baseAddress, keyBytes.count, valueBytes.baseAddress, valueBytes.count, nativeHeaders, opaque)
                }
            }
            return traffic_kafka_produce(handle.pointer, topic, partition ?? RD_KAFKA_PARTITION_UA, nil, 0, valueBytes.baseAddress, valueBytes.count, nativeHeaders, opaque)
        }
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            if let nativeHeaders { rd_kafka_headers_destroy(nativeHeaders) }
            if let opaque { Unmanaged<DeliveryBox>.fromOpaque(opaque).release() }
            let kind: KafkaError.Kind = error == RD_KAFKA_RESP_ERR__QUEUE_FULL ? .queueFull : .produce
            throw KafkaError(kind: kind, error: error, context: "produce to \(topic)")
        }
    }

    /// Produces one message and waits for its delivery report. Retries politely while the
    /// local queue is full.
    @discardableResult
    public func send(topic: String, partition: Int32? = nil, key: [UInt8]?, value: [UInt8], headers: [KafkaHeader] = []) async throws(KafkaError) -> KafkaDeliveryReport {
        // librdkafka's queue full: produce again after the product's back-off (1 ms growing to
        // 50 ms) while its delivery thread drains the queue.
        var pauses = ReconnectBackoff(policy: .init(initialDelay: .milliseconds(1), maximumDelay: .milliseconds(50)))
        while true {
            let outcome: Result<KafkaDeliveryReport, KafkaError> = await withCheckedContinuation { continuation in
                do throws(KafkaError) {
                    // The handler is registered only when produce succeeds, so exactly one of
                    // the two paths resumes the continuation.
                    try produce(topic: topic, partition: partition, key: key, value: value, headers: headers) { continuation.resume(returning: $0) }
                } catch {
                    continuation.resume(returning: .failure(error))
                }
            }
            if case .failure(let full) = outcome, full.kind == .queueFull {
                do {
                    try await Task.sleep(for: pauses.recordFailure())
                    continue
                } catch {
                    throw full // cancelled while the queue was full: that is the answer
                }
            }
            return try outcome.get()
        }
    }

    /// Waits until every enqueued message was delivered or failed, at most `timeout`.
    public func flush(timeout: Duration = .seconds(10)) async throws(KafkaError) {
        let handle = self.handle
        // rd_kafka_flush blocks: a thread of its own, never Dispatch's global queue, which on
        // Linux shares its width with Swift's cooperative pool.
        try await onOwnThread { () throws(KafkaError) in
            let error = rd_kafka_flush(handle.pointer, Int32(clamping: timeout.wholeMilliseconds))
            guard error == RD_KAFKA_RESP_ERR_NO_ERROR else {
                throw KafkaError(kind: .produce, error: error, context: "flush (\(rd_kafka_outq_len(handle.pointer)) messages still queued)")
            }
        }
    }

    /// Messages enqueued and not yet delivered.
    public var queuedMessages: Int { Int(rd_kafka_outq_len(handle.pointer)) }
}

/// Serves delivery reports on the producer's thread until stopped, then settles what is left.
private final class PollLoop: Sendable {
    let handle: KafkaHandle
    private let running = Mutex(true)

    init(handle: KafkaHandle) {
        self.handle = handle
    }

    func run() {
        while running.withLock({ $0 }) {
            rd_kafka_poll(handle.pointer, 100)
        }
        settle()
    }

    /// Every queued message ends with a report: delivered within the budget, else purged (whose
    /// reports the following polls serve).
    private func settle() {
        let pointer = handle.pointer
        let deadline = ContinuousClock.now + KafkaProducer.closeBudget
        while rd_kafka_outq_len(pointer) > 0, ContinuousClock.now < deadline {
            rd_kafka_poll(pointer, 50)
        }
        guard rd_kafka_outq_len(pointer) > 0 else { return }
        _ = rd_kafka_purge(pointer, Int32(RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT))
        let reports = ContinuousClock.now + .seconds(2)
        while rd_kafka_outq_len(pointer) > 0, ContinuousClock.now < reports {
            rd_kafka_poll(pointer, 50)
        }
    }

    /// Tells the loop to settle and end; returns at once (the thread holds the handle until it
    /// has, and its release destroys it).
    func stop() {
        running.withLock { $0 = false }
    }
}

/// The producer's callback state (see `KafkaCallbackContext` for why unchecked).
final class ProducerContext: KafkaCallbackContext, @unchecked Sendable {
    let failures = Mutex(0)
}

/// The completion handler of one message, passed to librdkafka as the message opaque.
final class DeliveryBox {
    let completion: @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void

    init(_ completion: @escaping @Sendable (Result<KafkaDeliveryReport, KafkaError>) -> Void) {
        self.completion = completion
    }
}

private let kafkaDeliveryCallback: @convention(c) (OpaquePointer?, UnsafePointer<rd_kafka_message_t>?, UnsafeMutableRawPointer?) -> Void = { _, message, opaque in
    guard let message else { return }
    let m = message.pointee
    let topic = m.rkt.map { String(cString: rd_kafka_topic_name($0)) } ?? ""
    let result: Result<KafkaDeliveryReport, KafkaError>
    if m.err == RD_KAFKA_RESP_ERR_NO_ERROR {
        result = .success(KafkaDeliveryReport(topic: topic, partition: m.partition, offset: m.offset))
    } else {
        result = .failure(KafkaError(kind: .produce, error: m.err, context: "delivery to \(topic)"))
    }
    if let box = m._private {
        Unmanaged<DeliveryBox>.fromOpaque(box).takeRetainedValue().completion(result)
    } else if case .failure(let error) = result, let context = KafkaHandle.context(of: opaque) as? ProducerContext {
        context.failures.withLock { $0 += 1 }
        context.logger.warning("delivery failed", metadata: ["error": "\(error)"])
    }
}

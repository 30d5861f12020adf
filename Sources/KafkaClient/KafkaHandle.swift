import CRdKafka
import Foundation
import Logging

/// Owns one `rd_kafka_t` and the Swift context its C callbacks reach through the opaque pointer.
///
/// librdkafka handles are thread-safe for the calls this module makes from several threads
/// (produce, offsets store, commit, pause); blocking calls (poll, close) are kept on one thread
/// or queue by the owning type. The last reference's release destroys the handle (on a thread
/// of its own), after which the context is released — never before, because callbacks may run
/// until destroy returns.
final class KafkaHandle: @unchecked Sendable {
    let pointer: OpaquePointer
    let context: KafkaCallbackContext

    init(type: rd_kafka_type_t, configuration: KafkaConfiguration, context: KafkaCallbackContext, prepare: (OpaquePointer) -> Void) throws(KafkaError) {
        let conf = try configuration.makeNative()
        rd_kafka_conf_set_opaque(conf, Unmanaged.passUnretained(context).toOpaque())
        rd_kafka_conf_set_log_cb(conf, kafkaLogCallback)
        rd_kafka_conf_set_error_cb(conf, kafkaErrorCallback)
        rd_kafka_conf_set_stats_cb(conf, kafkaStatsCallback)
        prepare(conf)
        var errorText = [CChar](repeating: 0, count: 512)
        guard let handle = rd_kafka_new(type, conf, &errorText, errorText.count) else {
            rd_kafka_conf_destroy(conf)
            throw KafkaError(kind: .clientCreation, message: String(nulTerminated: errorText))
        }
        self.pointer = handle
        self.context = context
    }

    /// Lends the handle for the duration of `body`.
    func withHandlePointer<R, E: Error>(_ body: (OpaquePointer) throws(E) -> R) throws(E) -> R {
        try body(pointer)
    }

    /// `rd_kafka_destroy` blocks (it joins librdkafka's threads; a consumer that was not closed
    /// leaves its group first), so it runs on a thread of its own, never on the releasing
    /// thread — which may be one of Swift's cooperative pool, or a client's own poll thread.
    /// The context lives until the destroy has returned: callbacks may run until then.
    deinit {
        let address = Int(bitPattern: pointer) // a plain value crosses to the thread; the handle is its alone now
        let context = self.context
        let destroyer = Thread {
            rd_kafka_destroy(OpaquePointer(bitPattern: address))
            context.onEvent(.closed)
        }
        destroyer.name = "kafka-destroy"
        destroyer.start()
    }

    static func context(of opaque: UnsafeMutableRawPointer?) -> KafkaCallbackContext? {
        opaque.map { Unmanaged<KafkaCallbackContext>.fromOpaque($0).takeUnretainedValue() }
    }
}

/// What the C callbacks hand results to. Subclasses add consumer- or producer-specific state.
/// `@unchecked Sendable` only because a class with subclasses cannot be checked: every stored
/// property here and in the subclasses is a `let` of a `Sendable` type (`Mutex` for state).
class KafkaCallbackContext: @unchecked Sendable {
    let logger: Logger
    /// Called for error and statistics events (on librdkafka's threads or the poll thread).
    let onEvent: @Sendable (KafkaClientEvent) -> Void

    init(logger: Logger, onEvent: @escaping @Sendable (KafkaClientEvent) -> Void) {
        self.logger = logger
        self.onEvent = onEvent
    }
}

/// Events a Kafka client reports besides messages.
public enum KafkaClientEvent: Sendable {
    /// Partitions were assigned to this consumer (after a rebalance).
    case assigned([KafkaTopicPartition])
    /// Partitions were taken away; their processed offsets were committed first.
    case revoked([KafkaTopicPartition])
    /// An error librdkafka reported (most are transient and retried internally).
    case error(KafkaError, fatal: Bool)
    /// The statistics JSON emitted every `statistics.interval.ms`.
    case statistics(String)
    /// The client is gone: its last reference was released and librdkafka destroyed it.
    case closed
}

private let kafkaLogCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafePointer<CChar>?) -> Void = { handle, level, facility, text in
    guard let handle, let context = KafkaHandle.context(of: rd_kafka_opaque(handle)) else { return }
    let message = text.map { String(cString: $0) } ?? ""
    let fac = facility.map { String(cString: $0) } ?? ""
    // syslog levels: 0-3 error, 4 warning, 5-6 notice/info, 7 debug
    let swiftLevel: Logger.Level = level <= 3 ? .error : level == 4 ? .warning : level <= 6 ? .info : .debug
    context.logger.log(level: swiftLevel, "\(message)", metadata: ["librdkafka": "\(fac)"])
}

private let kafkaErrorCallback: @convention(c) (OpaquePointer?, Int32, UnsafePointer<CChar>?, UnsafeMutableRawPointer?) -> Void = { handle, code, reason, opaque in
    guard let context = KafkaHandle.context(of: opaque) else { return }
    let error = KafkaError(kind: .client, code: code, message: reason.map { String(cString: $0) } ?? "")
    var fatal = false
    if code == RD_KAFKA_RESP_ERR__FATAL.rawValue, let handle {
        var text = [CChar](repeating: 0, count: 512)
        let underlying = rd_kafka_fatal_error(handle, &text, text.count)
        fatal = true
        context.onEvent(.error(KafkaError(kind: .client, code: underlying.rawValue, message: String(nulTerminated: text)), fatal: true))
        return
    }
    context.onEvent(.error(error, fatal: fatal))
}

private let kafkaStatsCallback: @convention(c) (OpaquePointer?, UnsafeMutablePointer<CChar>?, Int, UnsafeMutableRawPointer?) -> Int32 = { _, json, length, opaque in
    guard let context = KafkaHandle.context(of: opaque), let json else { return 0 }
    let text = String(decoding: UnsafeRawBufferPointer(start: json, count: length), as: UTF8.self)
    context.onEvent(.statistics(text))
    return 0 // librdkafka frees the buffer
}

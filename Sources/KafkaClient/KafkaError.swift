import CRdKafka

/// An error from the Kafka client layer, keeping librdkafka's error code and name.
public struct KafkaError: Error, Sendable, CustomStringConvertible {
    /// Where the error arose.
    public enum Kind: String, Sendable {
        /// A configuration property was rejected (unknown key or invalid value).
        case configuration
        /// Creating the client handle failed.
        case clientCreation
        /// Producing a message failed (locally or in its delivery report).
        case produce
        /// The local producer queue is full; wait for deliveries and retry.
        case queueFull
        /// Consuming, subscribing or handling a rebalance failed.
        case consume
        /// Storing or committing offsets failed.
        case commit
        /// A request to the cluster (metadata, watermarks, committed offsets) failed.
        case request
        /// The embedded (mock) broker could not be started or changed.
        case embeddedBroker
        /// A librdkafka error callback (broker down, authentication, all brokers down, …).
        case client
        /// The client was closed.
        case closed
    }

    public var kind: Kind
    /// librdkafka's `rd_kafka_resp_err_t` value (0 when the error is not librdkafka's).
    public var code: Int32
    public var message: String

    public init(kind: Kind, code: Int32 = 0, message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    init(kind: Kind, error: rd_kafka_resp_err_t, context: String) {
        self.kind = kind
        self.code = error.rawValue
        let text = String(cString: rd_kafka_err2str(error))
        self.message = context.isEmpty ? text : "\(context): \(text)"
    }

    /// librdkafka's symbolic name, e.g. `_TRANSPORT` or `UNKNOWN_TOPIC_OR_PART`.
    public var codeName: String {
        String(cString: rd_kafka_err2name(rd_kafka_resp_err_t(rawValue: code)))
    }

    /// True for errors that mean the brokers cannot be reached right now
    /// (`_ALL_BROKERS_DOWN`, `_TRANSPORT`); librdkafka keeps reconnecting by itself.
    public var isBrokerUnreachable: Bool {
        code == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN.rawValue || code == RD_KAFKA_RESP_ERR__TRANSPORT.rawValue
    }

    /// True for produce errors that sending the same message again cannot cure: it is too large
    /// for the producer's `message.max.bytes` or the broker's limits, or the broker judged the
    /// record itself invalid. Everything else (timeouts, leaders moving, brokers down, missing
    /// authorisation an operator can grant) is worth retrying.
    public var isPermanentForMessage: Bool {
        let permanent: [rd_kafka_resp_err_t] = [
            RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE, RD_KAFKA_RESP_ERR_INVALID_RECORD,
            RD_KAFKA_RESP_ERR_INVALID_MSG, RD_KAFKA_RESP_ERR__BAD_MSG, RD_KAFKA_RESP_ERR__INVALID_ARG,
        ]
        return (kind == .produce || kind == .queueFull) && permanent.contains { $0.rawValue == code }
    }

    /// A fatal error of an idempotent or transactional producer: it will refuse every further
    /// message; only a new producer helps.
    public var isFatal: Bool { code == RD_KAFKA_RESP_ERR__FATAL.rawValue }

    /// What an operator should do about it.
    public var hint: String {
        switch kind {
        case .configuration: return "fix the named property (see librdkafka's CONFIGURATION.md)"
        case .clientCreation: return "check the properties passed with -X"
        case .queueFull: return "the producer is faster than the broker: wait for deliveries (flush) and retry"
        case .produce, .client, .request: return "check that the brokers in bootstrap.servers are reachable and the topic exists"
        case .consume: return "check the group and topic; the consumer keeps retrying on transient errors"
        case .commit: return "offsets will be committed again on the next interval; if this repeats, check the group coordinator"
        case .embeddedBroker: return "the embedded broker is librdkafka's mock cluster; check the topic settings"
        case .closed: return "the client was closed; create a new one"
        }
    }

    public var description: String {
        "Kafka \(kind.rawValue) error \(codeName) (\(code)): \(message) — \(hint)"
    }
}

extension String {
    /// Text of a C error buffer filled by librdkafka.
    init(nulTerminated buffer: [CChar]) {
        let bytes = buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        self.init(decoding: bytes, as: UTF8.self)
    }
}

import CRdKafka
import Foundation
import OwnThread
public import Logging
import ProcessSpawn

/// An in-process Kafka cluster: librdkafka's mock cluster, speaking the real Kafka protocol
/// over TCP on loopback, so any client (this module, `kcat`) can use `bootstrapServers`.
///
/// Limits of the mock (librdkafka 2.0.2) that shape how it is used here:
/// - each partition keeps only about 5 MiB and silently drops older data, read or not:
///   create enough partitions that none holds more than ~4 MiB of a run;
/// - an empty fetch is answered only after the client's `fetch.wait.max.ms`: clients of the
///   embedded broker use `recommendedClientProperties` (10 ms) so latency is the product's;
/// - a consumer that dies without leaving its group holds its partitions until its
///   `session.timeout.ms` expires; embedded-mode clients use 6 s;
/// - taking a broker down closes its listener and binds the port again at once, and a failed
///   bind aborts the process: `BrokerPortHold` keeps outgoing connections off the port and
///   `SpawnGate` keeps children being started from holding the old listener open.
public final class EmbeddedKafka: Sendable {
    private let cluster: MockCluster
    let portHold = BrokerPortHold()
    /// `host:port,…` of the mock brokers.
    public let bootstrapServers: String
    /// Broker ids are 1…brokerCount.
    public let brokerCount: Int

    /// A topic to create at start.
    public struct Topic: Sendable {
        public var name: String
        public var partitions: Int
        public init(_ name: String, partitions: Int) {
            self.name = name
            self.partitions = partitions
        }
    }

    /// Consumer properties that keep the mock's own delays out of measurements and tests.
    public static let recommendedConsumerProperties: [String: String] = [
        "fetch.wait.max.ms": "10",
        "session.timeout.ms": "6000",
        "heartbeat.interval.ms": "500",
        "reconnect.backoff.ms": "50",
        "reconnect.backoff.max.ms": "500",
    ]

    /// Starts a cluster of `brokers` with `topics`. The mock answers its commands on its own
    /// thread and the caller waits for each: that waiting happens on a thread of its own, never
    /// on Swift's cooperative pool (under load the mock can take seconds to answer).
    public static func start(brokers: Int = 1, topics: [Topic] = [], logger: Logger = Logger(label: "kafka.embedded")) async throws(KafkaError) -> EmbeddedKafka {
        try await onOwnThread { () throws(KafkaError) in try EmbeddedKafka(brokers: brokers, topics: topics, logger: logger) }
    }

    private init(brokers: Int, topics: [Topic], logger: Logger) throws(KafkaError) {
        let context = KafkaCallbackContext(logger: logger) { _ in }
        // The mock cluster lives inside a client handle; this one never talks to a broker.
        let handle = try KafkaHandle(type: RD_KAFKA_PRODUCER, configuration: KafkaConfiguration(["log_level": "3"]), context: context) { _ in }
        guard let made = rd_kafka_mock_cluster_new(handle.pointer, Int32(brokers)) else {
            throw KafkaError(kind: .embeddedBroker, message: "rd_kafka_mock_cluster_new(\(brokers)) failed")
        }
        cluster = MockCluster(made, host: handle)
        bootstrapServers = String(cString: rd_kafka_mock_cluster_bootstraps(made))
        brokerCount = brokers
        for topic in topics {
            try Self.createTopic(cluster, topic.name, partitions: topic.partitions)
        }
        for (index, port) in BrokerPortHold.ports(bootstrapServers).enumerated() where !portHold.hold(broker: Int32(index + 1), port: port) {
            logger.warning("could not hold the port of embedded broker \(index + 1) (\(port)); taking it down may abort the process if another socket takes the port")
        }
    }

    private static func createTopic(_ cluster: MockCluster, _ name: String, partitions: Int) throws(KafkaError) {
        let error = rd_kafka_mock_topic_create(cluster.pointer, name, Int32(partitions), 1)
        if error != RD_KAFKA_RESP_ERR_NO_ERROR {
            throw KafkaError(kind: .embeddedBroker, error: error, context: "create topic \(name) with \(partitions) partitions")
        }
    }

    /// Creates a topic with the given partition count (replication factor 1).
    public func createTopic(_ name: String, partitions: Int) async throws(KafkaError) {
        let cluster = self.cluster
        try await onOwnThread { () throws(KafkaError) in try Self.createTopic(cluster, name, partitions: partitions) }
    }

    /// Takes a broker down: its connections are closed and new ones refused until `setBrokerUp`.
    public func setBrokerDown(_ id: Int32 = 1) async throws(KafkaError) {
        let cluster = self.cluster
        try await onOwnThread { () throws(KafkaError) in
            // The mock closes the broker's listener and binds its port again at once; a child
            // being started meanwhile would hold the listener open (see SpawnGate).
            let error = SpawnGate.withoutSpawning { rd_kafka_mock_broker_set_down(cluster.pointer, id) }
            if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(kind: .embeddedBroker, error: error, context: "set broker \(id) down") }
        }
    }

    /// Brings a broker back up.
    public func setBrokerUp(_ id: Int32 = 1) async throws(KafkaError) {
        let (cluster, portHold, ports) = (self.cluster, self.portHold, BrokerPortHold.ports(bootstrapServers))
        try await onOwnThread { () throws(KafkaError) in
            let error = rd_kafka_mock_broker_set_up(cluster.pointer, id)
            if error != RD_KAFKA_RESP_ERR_NO_ERROR { throw KafkaError(kind: .embeddedBroker, error: error, context: "set broker \(id) up") }
            // Listening again: hold its port for the next time it goes down.
            if id >= 1, Int(id) <= ports.count, !portHold.hold(broker: id, port: ports[Int(id) - 1]) {
                throw KafkaError(kind: .embeddedBroker, message: "broker \(id) is up, but its port \(ports[Int(id) - 1]) could not be held: taking it down again may abort the process")
            }
        }
    }

    /// Makes the cluster answer the next `errors.count` requests of one API with these error
    /// codes, in order (fault injection for tests: e.g. Produce refused with MSG_SIZE_TOO_LARGE).
    public func failNextRequests(_ api: API, with errors: [Int32]) {
        var codes = errors.map { rd_kafka_resp_err_t(rawValue: $0) }
        rd_kafka_mock_push_request_errors_array(cluster.pointer, api.rawValue, codes.count, &codes)
    }

    /// Kafka protocol API keys that `failNextRequests` can target.
    public enum API: Int16, Sendable {
        case produce = 0
        case fetch = 1
        case offsetCommit = 8
    }

    /// `bootstrap.servers` plus `recommendedConsumerProperties` and the group, for a consumer.
    public func consumerConfiguration(group: String, _ extra: [String: String] = [:]) -> KafkaConfiguration {
        var properties = Self.recommendedConsumerProperties
        properties["bootstrap.servers"] = bootstrapServers
        properties["group.id"] = group
        for (key, value) in extra { properties[key] = value }
        return KafkaConfiguration(properties)
    }

    /// Producer properties for the embedded broker: a broker set down and up again is
    /// reconnected to within half a second (librdkafka's default back-off grows to 10 s, which
    /// on a busy machine made tests wait out their deadlines).
    public static let recommendedProducerProperties: [String: String] = [
        "reconnect.backoff.ms": "50",
        "reconnect.backoff.max.ms": "500",
    ]

    /// `bootstrap.servers` plus `recommendedProducerProperties` (and `extra`), for a producer.
    public func producerConfiguration(_ extra: [String: String] = [:]) -> KafkaConfiguration {
        var properties = Self.recommendedProducerProperties
        for (key, value) in extra { properties[key] = value }
        properties["bootstrap.servers"] = bootstrapServers
        return KafkaConfiguration(properties)
    }
}

/// Owns the mock cluster and the client handle hosting it: librdkafka requires the cluster to
/// be destroyed first, and `deinit` runs before the stored `host` is released.
/// `@unchecked Sendable`: both are immutable; the mock cluster's C API is thread-safe.
private final class MockCluster: @unchecked Sendable {
    let pointer: OpaquePointer
    let host: KafkaHandle

    init(_ pointer: OpaquePointer, host: KafkaHandle) {
        self.pointer = pointer
        self.host = host
    }

    /// Destroying the cluster blocks (its broker threads are joined): a thread of its own, which
    /// keeps the host handle until the cluster is gone.
    deinit {
        let address = Int(bitPattern: pointer) // a plain value crosses to the thread; the cluster is its alone now
        let host = self.host
        let destroyer = Thread {
            rd_kafka_mock_cluster_destroy(OpaquePointer(bitPattern: address))
            withExtendedLifetime(host) {}
        }
        destroyer.name = "kafka-mock-destroy"
        destroyer.start()
    }
}

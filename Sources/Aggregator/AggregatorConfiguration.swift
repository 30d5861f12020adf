public import KafkaClient
import RedisClient
public import TrafficModel

/// Everything `traffic-aggregator run` can be told, with the product's defaults.
public struct AggregatorConfiguration: Sendable {
    /// `bootstrap.servers`; nil runs on the embedded broker.
    public var kafkaBootstrap: String?
    public var topic = "risk-assessment-results"
    public var group = "result-aggregator"
    public var deadLetterTopic = "risk-assessment-results.dlq"
    /// Extra librdkafka properties (`-X key=value`), passed through unchanged.
    public var kafkaProperties: [String: String] = [:]
    /// nil with `noRedis`.
    public var redisURL: String? = "redis://127.0.0.1:6379"
    /// Consume, validate, count and commit without Redis.
    public var noRedis = false
    public var keys = KeySchema()
    public var latestTTLSeconds = 300
    public var alertListLength = 100
    public var alertRule = AlertRule()
    /// Results kept per camera in `camera:<id>:history` for gateway recovery (approximate, `MAXLEN ~`).
    public var historyLength = 1_000
    /// RequestIds kept per camera in `camera:<id>:alerted`: a requestId that reaches Kafka again
    /// as another message within the camera's last this many alerts pushes no second alert.
    public var alertDedupeWindow = 100
    public var batchSize = 1_000
    /// How long a batch may wait for more messages after the first one arrived.
    public var batchLinger: Duration = .zero
    public var maximumMessageBytes = AssessmentMessage.defaultMaximumBytes
    /// Published results (position included) larger than this are dead-lettered.
    public var maximumResultBytes = WritePlanner.defaultMaximumResultBytes
    /// Bytes of messages and their detections one batch may hold (frame images make detections
    /// large); a batch over it is cut and the rest carried to the next one.
    public var maximumBatchBytes = 64 << 20
    /// Frame images larger than this (decoded) are dropped from their result.
    public var maximumFrameBytes = FrameImage.defaultMaximumBytes
    /// How far ahead of the aggregator's clock a result's `timestamp` may be (nil: no check).
    public var maximumClockSkew: Duration? = .seconds(300)
    /// A partition with messages waiting and no progress for this long makes /healthz not ready.
    public var stallThreshold: Duration = .seconds(30)
    /// How often processing progress and lag are checked.
    public var progressInterval: Duration = .seconds(1)
    /// Extra properties of the dead-letter producer only (after the derived ones).
    public var deadLetterProducerProperties: [String: String] = [:]
    /// Partitions of the topic when the embedded broker creates it.
    public var embeddedPartitions = 16
    /// Port of the HTTP endpoint with /metrics and /healthz (0: none).
    public var metricsPort = 9464
    /// Replicas that must acknowledge a batch (`WAIT`) before its offsets are stored; 0 does
    /// not wait (a failover may then lose batches the old primary acknowledged).
    public var minimumReplicaAcks = 0
    /// How long a batch's `WAIT` may take before the write counts as failed (and is retried).
    public var replicaAckTimeout: Duration = .seconds(2)
    /// Whether each message's Kafka offset is checked against what its camera applied (a
    /// redelivery then changes nothing). Always on in the service; off only in the benchmark
    /// that measures what the check costs.
    public var checksAppliedOffsets = true

    public init() {}

    /// The limits the write transaction applies to every batch.
    public var writeSettings: WriteTransaction.Settings {
        var settings = WriteTransaction.Settings()
        settings.latestTTLSeconds = latestTTLSeconds
        settings.alertListLength = alertListLength
        settings.alertDedupeWindow = alertDedupeWindow
        settings.historyLength = historyLength
        settings.minimumReplicaAcks = minimumReplicaAcks
        settings.replicaAckTimeout = replicaAckTimeout
        settings.checksAppliedOffsets = checksAppliedOffsets
        return settings
    }

    /// The consumer's librdkafka properties: product defaults, then the operator's `-X` values.
    public func consumerProperties(bootstrap: String) -> KafkaConfiguration {
        var properties: [String: String] = [
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": "true",
            "auto.commit.interval.ms": "1000",
            // A Redis outage pauses processing; polling continues, so this only guards a hang.
            "max.poll.interval.ms": "300000",
            "partition.assignment.strategy": "cooperative-sticky",
        ]
        if kafkaBootstrap == nil {
            for (key, value) in EmbeddedKafka.recommendedConsumerProperties { properties[key] = value }
        }
        for (key, value) in kafkaProperties { properties[key] = value }
        return KafkaConfiguration(properties)
    }

    /// The dead-letter producer's properties: acks from all replicas, idempotent, and a message
    /// size limit derived from the consumer's (`maximumMessageBytes` plus room for the headers),
    /// so every message the aggregator accepts to read can be copied whole where the broker
    /// allows it. The operator's `-X` values win, then `deadLetterProducerProperties`.
    public func producerProperties(bootstrap: String) -> KafkaConfiguration {
        var properties: [String: String] = [
            "bootstrap.servers": bootstrap,
            "enable.idempotence": "true",
            "linger.ms": "5",
            // librdkafka accepts at most 1,000,000,000.
            "message.max.bytes": String(min(1_000_000_000, max(1_000_000, maximumMessageBytes + Self.deadLetterHeaderAllowance))),
        ]
        for (key, value) in kafkaProperties where !Self.consumerOnly.contains(key) { properties[key] = value }
        for (key, value) in deadLetterProducerProperties { properties[key] = value }
        return KafkaConfiguration(properties)
    }

    /// Room for a dead letter's headers and record framing on top of the original message.
    static let deadLetterHeaderAllowance = 64 * 1024

    static let consumerOnly: Set<String> = [
        "group.id", "auto.offset.reset", "enable.auto.commit", "auto.commit.interval.ms", "max.poll.interval.ms",
        "session.timeout.ms", "heartbeat.interval.ms", "fetch.wait.max.ms", "fetch.min.bytes", "partition.assignment.strategy",
        "enable.auto.offset.store", "group.instance.id", "isolation.level", "enable.partition.eof",
    ]
}

public import Prometheus
import TrafficModel

/// The aggregator's Prometheus metrics.
public final class AggregatorMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let consumed: Counter
    let published: Counter
    let alertsPushed: Counter
    let alertsDeduplicated: Counter
    let latestSkipped: Counter
    let redeliveredSkipped: Counter
    let offsetResets: Counter
    let writeConflicts: Counter
    let writeErrors: Counter
    let detectionMissing: Counter
    let deadLettered: [InputRejection.Reason: Counter]
    let deadLettersLost: [InputRejection.Reason: Counter]
    let deadLettersTruncated: Counter
    let deadLettersUndigested: Counter
    let detectionCorrupt: Counter
    let detectionFieldsDropped: Counter
    let framesStored: Counter
    let framesDropped: Counter
    let stalledPartitions: Gauge
    let batchSize: ValueHistogram
    let batchLatency: DurationHistogram
    let endToEndLag: DurationHistogram
    let redisErrors: Counter
    let redisReconnects: Gauge
    let consumerLag: Gauge
    let redisUp: Gauge
    let replicaAcksUnmet: Gauge
    let kafkaUp: Gauge

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        consumed = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "messages_consumed", unitName: "total", helpText: "Kafka messages consumed"))
        published = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "results_published", unitName: "total", helpText: "Merged results published to camera channels"))
        alertsPushed = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "alerts_pushed", unitName: "total", helpText: "Alerts pushed to alerts:<camera>"))
        alertsDeduplicated = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "alerts_deduplicated", unitName: "total", helpText: "Alerts not pushed because their requestId already alerted"))
        latestSkipped = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "latest_skipped", unitName: "total", helpText: "latest updates skipped because the stored state is newer"))
        redeliveredSkipped = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "redelivered_skipped", unitName: "total", helpText: "Messages skipped because their camera had applied them already (Kafka offset at or below the stored one)"))
        offsetResets = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "offset_resets", unitName: "total", helpText: "Messages applied although their camera's stored Kafka offset was at or past the partition's end (topic recreated or truncated)"))
        writeConflicts = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "write_conflicts", unitName: "total", helpText: "Batch writes started over because another client changed a watched key"))
        writeErrors = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "write_errors", unitName: "total", helpText: "Commands that failed inside an applied batch transaction (data of the wrong type, inconsistent history)"))
        detectionMissing = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "detection_missing", unitName: "total", helpText: "Results published without a usable detection"))
        var dead: [InputRejection.Reason: Counter] = [:]
        for reason in InputRejection.Reason.allCases {
            dead[reason] = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "dead_letters", unitName: "total", helpText: "Messages rejected and dead-lettered, by reason (those the topic refused even truncated are also in dead_letters_lost)"), labels: [("reason", reason.rawValue)])
        }
        deadLettered = dead
        var lost: [InputRejection.Reason: Counter] = [:]
        for reason in InputRejection.Reason.allCases {
            lost[reason] = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "dead_letters_lost", unitName: "total", helpText: "Rejected messages the dead-letter topic refused even truncated (logged, offset committed), by reason"), labels: [("reason", reason.rawValue)])
        }
        deadLettersLost = lost
        deadLettersTruncated = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "dead_letters_truncated", unitName: "total", helpText: "Dead letters written truncated because the whole was refused"))
        deadLettersUndigested = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "dead_letters_undigested", unitName: "total", helpText: "Truncated dead letters written without the original's SHA-256 because libcrypto could not compute it (out of memory)"))
        detectionCorrupt = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "detection_corrupt", unitName: "total", helpText: "Detection records present but not a JSON object (published as missing)"))
        detectionFieldsDropped = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "detection_fields_dropped", unitName: "total", helpText: "Detection fields dropped because the aggregator writes those names itself"))
        framesStored = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "frames_stored", unitName: "total", helpText: "Frame images moved out of results into frame:<camera>:<requestId>"))
        framesDropped = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "frames_dropped", unitName: "total", helpText: "Frame images dropped (not base64, over the frame bound)"))
        stalledPartitions = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "stalled_partitions", unitName: "", helpText: "Partitions with messages waiting and no progress for longer than the stall threshold"))
        batchSize = registry.makeValueHistogram(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "batch_size", unitName: "", helpText: "Messages per processed batch"), buckets: [1, 10, 50, 100, 250, 500, 1000, 2000, 5000])
        batchLatency = registry.makeDurationHistogram(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "batch", unitName: "seconds", helpText: "Time from poll to committed-ready for a batch"), buckets: [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1)])
        endToEndLag = registry.makeDurationHistogram(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "end_to_end_lag", unitName: "seconds", helpText: "Kafka message timestamp to results written"), buckets: [.milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(500), .seconds(1), .seconds(5), .seconds(30)])
        redisErrors = registry.makeCounter(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "redis_errors", unitName: "total", helpText: "Failed Redis round trips (retried)"))
        redisReconnects = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "redis_reconnects", unitName: "", helpText: "Redis reconnects since start"))
        consumerLag = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "consumer_lag", unitName: "messages", helpText: "Messages not yet processed (written or dead-lettered) behind the partition ends, summed over assigned partitions"))
        redisUp = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "redis_up", unitName: "", helpText: "1 when the last Redis round trip succeeded"))
        replicaAcksUnmet = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "replica_acks_unmet", unitName: "", helpText: "1 while batches wait because WAIT counted fewer replica acknowledgements than --min-replica-acks (Redis itself answers; /healthz says why)"))
        kafkaUp = registry.makeGauge(descriptor: MetricNameDescriptor(namespace: "aggregator", metricName: "kafka_up", unitName: "", helpText: "1 unless all brokers are reported down"))
    }

    /// Prometheus text exposition format.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}

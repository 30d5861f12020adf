import ServiceCLI
import Aggregator
import ArgumentParser
import Dispatch
import Foundation
import KafkaClient
import Logging
import RedisClient
import ServiceLifecycle
import TrafficModel

/// `traffic-aggregator run`: the service.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the aggregator service until SIGTERM/SIGINT.",
        discussion: """
        Every option also reads an environment variable (named in its help); a flag wins over the
        environment. With no Kafka address the service starts an embedded broker (librdkafka's
        mock cluster) and prints its address, so it works out of the box.
        """
    )

    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Input topic (env KAFKA_TOPIC).") var topic: String?
    @Option(help: "Consumer group (env KAFKA_GROUP).") var group: String?
    @Option(name: .customLong("dlq-topic"), help: "Dead-letter topic (env KAFKA_DLQ_TOPIC).") var deadLetterTopic: String?
    @OptionGroup var redis: RedisOptions
    @Flag(name: .customLong("no-redis"), help: "Consume, validate, count and commit without Redis.") var noRedis = false
    @Option(name: .customLong("latest-ttl"), help: "TTL of camera:<id>:latest in seconds (env LATEST_TTL).") var latestTTL: Int?
    @Option(name: .customLong("alert-list-length"), help: "Entries kept in alerts:<id> (env ALERT_LIST_LENGTH).") var alertListLength: Int?
    @Option(name: .customLong("alert-dedupe-window"), help: "RequestIds kept per camera in camera:<id>:alerted: a requestId produced again within the camera's last this many alerts pushes no second alert (env ALERT_DEDUPE_WINDOW).") var alertDedupeWindow: Int?
    @Option(name: .customLong("alert-marker-ttl"), help: ArgumentHelp("No longer used: alerts are deduplicated per camera (--alert-dedupe-window); accepted so old command lines still start.", visibility: .hidden)) var alertMarkerTTL: Int?
    @Option(name: .customLong("history-length"), help: "Results kept per camera in camera:<id>:history for gateway recovery (env HISTORY_LENGTH).") var historyLength: Int?
    @Option(name: .customLong("alert-level"), help: "Lowest maxRiskLevel that alerts: none|low|medium|high|critical (env ALERT_LEVEL).") var alertLevel: String?
    @Option(name: .customLong("batch-size"), help: "Messages per batch (env BATCH_SIZE).") var batchSize: Int?
    @Option(name: .customLong("batch-linger-ms"), help: "Wait for more messages after the first of a batch (env BATCH_LINGER_MS).") var batchLingerMs: Int?
    @Option(name: .customLong("max-message-bytes"), help: "Messages larger than this are dead-lettered (env MAX_MESSAGE_BYTES).") var maxMessageBytes: Int?
    @Option(name: .customLong("max-result-bytes"), help: "Merged results larger than this (frame image moved out) are dead-lettered (env MAX_RESULT_BYTES).") var maxResultBytes: Int?
    @Option(name: .customLong("max-batch-bytes"), help: "Bytes of messages and detections one batch may hold; a larger batch is cut and the rest follows (env MAX_BATCH_BYTES).") var maxBatchBytes: Int?
    @Option(name: .customLong("max-frame-bytes"), help: "Frame images larger than this (decoded) are dropped from their result (env MAX_FRAME_BYTES).") var maxFrameBytes: Int?
    @Option(name: .customLong("max-clock-skew"), help: "Seconds a timestamp may be ahead of this clock before the message is dead-lettered; 0 disables the check (env MAX_CLOCK_SKEW).") var maxClockSkew: Int?
    @Option(name: .customLong("min-replica-acks"), help: "Replicas that must have a batch (WAIT after EXEC) before its offsets are stored; 0: do not wait (env MIN_REPLICA_ACKS).") var minReplicaAcks: Int?
    @Option(name: .customLong("replica-ack-timeout-ms"), help: "How long a batch's WAIT may take before the write is retried (env REPLICA_ACK_TIMEOUT_MS).") var replicaAckTimeoutMs: Int?
    @Option(name: .customLong("stall-threshold"), help: "Seconds a partition may have messages waiting without progress before /healthz says not ready (env STALL_THRESHOLD).") var stallThreshold: Int?
    @Option(name: .customLong("embedded-partitions"), help: "Partitions of the input topic on the embedded broker.") var embeddedPartitions = 16
    @Option(name: .customLong("bootstrap-file"), help: "Write the embedded broker's address to this file.") var bootstrapFile: String?
    @Option(name: .customLong("metrics-port"), help: "Port of /metrics and /healthz, 0 for none (env METRICS_PORT).") var metricsPort: Int?
    @Option(name: .customLong("metrics-host"), help: "Address the metrics endpoint binds to (env METRICS_HOST).") var metricsHost: String?
    @Option(name: .customLong("log-level"), help: "trace|debug|info|notice|warning|error|critical (env LOG_LEVEL).") var logLevel: String?

    func validate() throws {
        if let level = setting(alertLevel, env: "ALERT_LEVEL"), RiskLevel(name: level) == nil {
            throw ValidationError("--alert-level '\(level)' is not one of none|low|medium|high|critical")
        }
        for (name, value) in [("--batch-size", batchSize), ("--alert-list-length", alertListLength), ("--latest-ttl", latestTTL), ("--history-length", historyLength), ("--alert-dedupe-window", alertDedupeWindow),
                              ("--max-result-bytes", maxResultBytes), ("--max-frame-bytes", maxFrameBytes), ("--max-batch-bytes", maxBatchBytes), ("--stall-threshold", stallThreshold)] {
            if let value, value <= 0 { throw ValidationError("\(name) must be positive, got \(value)") }
        }
        if let maxClockSkew, !(0...315_360_000).contains(maxClockSkew) { throw ValidationError("--max-clock-skew must be from 0 (off) to 315360000 (ten years) seconds, got \(maxClockSkew)") }
        if let maxMessageBytes, !(1...900_000_000).contains(maxMessageBytes) { throw ValidationError("--max-message-bytes must be from 1 to 900000000, got \(maxMessageBytes)") }
        if let acks = try setting(minReplicaAcks, env: "MIN_REPLICA_ACKS"), !(0...100).contains(acks) { throw ValidationError("--min-replica-acks must be from 0 (do not wait) to 100, got \(acks)") }
        if let timeout = try setting(replicaAckTimeoutMs, env: "REPLICA_ACK_TIMEOUT_MS"), timeout <= 0 { throw ValidationError("--replica-ack-timeout-ms must be positive, got \(timeout)") }
    }

    func run() async throws {
        bootstrapLogging(logLevel)
        let logger = Logger(label: "traffic-aggregator")
        var config = AggregatorConfiguration()
        config.kafkaBootstrap = kafka.bootstrap
        config.topic = setting(topic, env: "KAFKA_TOPIC") ?? config.topic
        config.group = setting(group, env: "KAFKA_GROUP") ?? config.group
        config.deadLetterTopic = setting(deadLetterTopic, env: "KAFKA_DLQ_TOPIC") ?? config.deadLetterTopic
        config.kafkaProperties = try kafka.properties().properties
        config.noRedis = noRedis
        config.redisURL = noRedis ? nil : redis.resolvedURL
        config.keys = KeySchema(namespace: redis.resolvedNamespace)
        config.latestTTLSeconds = try setting(latestTTL, env: "LATEST_TTL") ?? config.latestTTLSeconds
        config.alertListLength = try setting(alertListLength, env: "ALERT_LIST_LENGTH") ?? config.alertListLength
        config.historyLength = try setting(historyLength, env: "HISTORY_LENGTH") ?? config.historyLength
        config.alertDedupeWindow = try setting(alertDedupeWindow, env: "ALERT_DEDUPE_WINDOW") ?? config.alertDedupeWindow
        if alertMarkerTTL != nil || env("ALERT_MARKER_TTL") != nil {
            logger.warning("--alert-marker-ttl / ALERT_MARKER_TTL is no longer used and is ignored: no alerted:<requestId> markers are written; a redelivered message is recognised by its Kafka offset, and a requestId produced twice is deduplicated per camera (--alert-dedupe-window)")
        }
        if let level = (setting(alertLevel, env: "ALERT_LEVEL")).flatMap(RiskLevel.init(name:)) { config.alertRule = AlertRule(minimumLevel: level) }
        config.batchSize = try setting(batchSize, env: "BATCH_SIZE") ?? config.batchSize
        config.batchLinger = .milliseconds(try setting(batchLingerMs, env: "BATCH_LINGER_MS") ?? 0)
        config.maximumMessageBytes = try setting(maxMessageBytes, env: "MAX_MESSAGE_BYTES") ?? config.maximumMessageBytes
        config.maximumResultBytes = try setting(maxResultBytes, env: "MAX_RESULT_BYTES") ?? config.maximumResultBytes
        config.maximumFrameBytes = try setting(maxFrameBytes, env: "MAX_FRAME_BYTES") ?? config.maximumFrameBytes
        config.maximumBatchBytes = try setting(maxBatchBytes, env: "MAX_BATCH_BYTES") ?? config.maximumBatchBytes
        if let skew = try setting(maxClockSkew, env: "MAX_CLOCK_SKEW") { config.maximumClockSkew = skew > 0 ? .seconds(skew) : nil }
        if let stall = try setting(stallThreshold, env: "STALL_THRESHOLD") { config.stallThreshold = .seconds(stall) }
        config.embeddedPartitions = embeddedPartitions
        config.metricsPort = try setting(metricsPort, env: "METRICS_PORT") ?? config.metricsPort
        config.minimumReplicaAcks = try setting(minReplicaAcks, env: "MIN_REPLICA_ACKS") ?? config.minimumReplicaAcks
        if let timeout = try setting(replicaAckTimeoutMs, env: "REPLICA_ACK_TIMEOUT_MS") { config.replicaAckTimeout = .milliseconds(timeout) }

        var embedded: EmbeddedKafka?
        let bootstrap: String
        if let given = config.kafkaBootstrap {
            bootstrap = given
        } else {
            let broker = try await EmbeddedKafka.start(topics: [.init(config.topic, partitions: config.embeddedPartitions), .init(config.deadLetterTopic, partitions: 1)])
            embedded = broker
            bootstrap = broker.bootstrapServers
            logger.notice("no Kafka address given: running on the embedded broker at \(bootstrap)")
            if let bootstrapFile {
                try bootstrap.write(toFile: bootstrapFile, atomically: true, encoding: .utf8)
            }
        }
        if config.noRedis {
            logger.warning("*** --no-redis: results are validated, counted and committed but NOT written to Redis ***")
        }
        logger.info("""
            starting: kafka=\(bootstrap) topic=\(config.topic) group=\(config.group) dlq=\(config.deadLetterTopic) \
            redis=\(config.redisURL.map { RedisConfiguration.masked($0) } ?? "disabled") namespace='\(config.keys.namespace)' \
            latestTTL=\(config.latestTTLSeconds)s alertList=\(config.alertListLength) alertDedupe=\(config.alertDedupeWindow) history=\(config.historyLength) alertLevel=\(config.alertRule.minimumLevel) \
            batch=\(config.batchSize) linger=\(config.batchLinger) maxMessage=\(config.maximumMessageBytes)B maxResult=\(config.maximumResultBytes)B \
            maxFrame=\(config.maximumFrameBytes)B clockSkew=\(config.maximumClockSkew.map { "\($0)" } ?? "off") stallThreshold=\(config.stallThreshold) \
            kafkaProperties=[\(KafkaConfiguration(config.kafkaProperties))]
            """)

        let service = try AggregatorService(configuration: config, bootstrap: bootstrap, logger: logger)
        // The endpoint comes first: shut down last, it answers /healthz while the aggregator finishes.
        var services: [any Service] = []
        if config.metricsPort > 0 {
            let host = setting(metricsHost, env: "METRICS_HOST") ?? "0.0.0.0"
            services.append(try MetricsEndpoint(host: host, port: config.metricsPort, aggregator: service))
            logger.info("metrics and health on http://\(host):\(config.metricsPort)/metrics and /healthz")
        }
        services.append(service)
        try await runServiceGroup(services, logger: logger)
        _ = embedded
    }
}

import Foundation
import KafkaClient
import Logging
import RedisClient
import Synchronization
import TrafficModel

/// The aggregator's run loop: poll a batch → validate → dead-letter the bad → fetch detections
/// (one MGET) → plan → apply the plan (one `WriteTransaction`) → store offsets.
///
/// At least once: offsets are stored only after every write of the batch was acknowledged and
/// every dead letter was delivered; stored offsets are committed every second, before a
/// rebalance takes partitions away, and on shutdown. While Redis is unreachable the loop keeps
/// the batch, pauses its partitions and keeps polling (so the group does not evict it), retrying
/// with capped back-off; then it resumes where it stopped.
public final class AggregatorService: Sendable {
    public let configuration: AggregatorConfiguration
    public let metrics: AggregatorMetrics
    private let consumer: KafkaConsumer
    private let redis: RedisClient?
    private let deadLetters: DeadLetterWriter
    private let planner: WritePlanner
    private let writer: WriteTransaction
    private let logger: Logger
    private let log: RateLimitedLog
    private let stopping = Mutex(false)
    private let health = Mutex((kafka: false, redis: false))

    /// Creates the consumer, dead-letter producer and Redis client; nothing runs until `run()`.
    public init(configuration: AggregatorConfiguration, bootstrap: String, metrics: AggregatorMetrics = AggregatorMetrics(), logger: Logger = Logger(label: "aggregator")) throws {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.log = RateLimitedLog(logger: logger)
        consumer = try KafkaConsumer(configuration: configuration.consumerProperties(bootstrap: bootstrap), logger: Logger(label: "aggregator.kafka"))
        let producer = try KafkaProducer(configuration: configuration.producerProperties(bootstrap: bootstrap), logger: Logger(label: "aggregator.dlq"))
        deadLetters = DeadLetterWriter(producer: producer, topic: configuration.deadLetterTopic)
        if configuration.noRedis {
            redis = nil
        } else {
            var redisConfiguration = try RedisConfiguration(url: configuration.redisURL ?? "redis://127.0.0.1:6379")
            redisConfiguration.reconnect = .init(initialDelay: .milliseconds(50), maximumDelay: .seconds(2))
            redis = RedisClient(configuration: redisConfiguration, label: "aggregator", logger: Logger(label: "aggregator.redis"))
        }
        planner = WritePlanner(keys: configuration.keys, alertRule: configuration.alertRule, maximumMessageBytes: configuration.maximumMessageBytes)
        writer = WriteTransaction(settings: configuration.writeSettings)
    }

    /// Asks the loop to finish its in-flight batch, commit and leave the group.
    public func requestStop() {
        stopping.withLock { $0 = true }
    }

    private var isStopping: Bool { stopping.withLock { $0 } }

    /// Ready when both Kafka and Redis (unless disabled) answered recently.
    public var isHealthy: (kafka: Bool, redis: Bool) {
        let h = health.withLock { $0 }
        return (h.kafka, configuration.noRedis ? true : h.redis)
    }

    /// Runs until `requestStop()`; then commits and closes the consumer.
    public func run() async throws {
        try consumer.subscribe(topics: [configuration.topic])
        let events = Task { [consumer, metrics, logger] in
            for await event in consumer.events {
                switch event {
                case .error(let error, let fatal):
                    if error.isBrokerUnreachable {
                        self.health.withLock { $0.kafka = false }
                        metrics.kafkaUp.record(0.0)
                    }
                    logger.log(level: fatal ? .critical : .warning, "Kafka: \(error)")
                case .assigned, .revoked:
                    self.health.withLock { $0.kafka = true }
                    metrics.kafkaUp.record(1.0)
                case .statistics:
                    break
                }
            }
        }
        defer { events.cancel() }
        if let redis {
            do {
                _ = try await redis.send(.ping())
                markRedis(up: true)
            } catch {
                logger.warning("Redis not reachable at start; will retry", metadata: ["error": "\(error)"])
            }
        }
        var carried: [KafkaMessage] = []
        var lastLagCheck = ContinuousClock.now
        while !isStopping {
            var batch = carried
            carried = []
            if batch.isEmpty {
                batch = try await consumer.nextBatch(maxMessages: configuration.batchSize, timeout: .milliseconds(100), linger: configuration.batchLinger)
            }
            if ContinuousClock.now - lastLagCheck > .seconds(2) {
                lastLagCheck = ContinuousClock.now
                if let lag = try? consumer.lag() { metrics.consumerLag.record(Int64(lag.values.reduce(0, +))) }
            }
            if batch.isEmpty { continue }
            health.withLock { $0.kafka = true }
            metrics.kafkaUp.record(1.0)
            let started = ContinuousClock.now
            guard let extra = await process(batch) else {
                logger.notice("stopping during an outage: the in-flight batch is not committed and will be re-delivered")
                break
            }
            carried = extra
            do {
                try consumer.storeOffsets(for: batch)
            } catch {
                // Not fatal: the batch is re-delivered after a restart or rebalance (at least once).
                log.log(.error, key: "offsets", "storing offsets failed: \(error)")
            }
            metrics.batchSize.record(Double(batch.count))
            metrics.batchLatency.record(ContinuousClock.now - started)
            let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
            if let newest = batch.compactMap(\.timestampMilliseconds).max() {
                metrics.endToEndLag.record(.milliseconds(max(0, nowMs - newest)))
            }
        }
        do {
            try await consumer.commit()
        } catch {
            logger.warning("final commit failed: \(error)")
        }
        await consumer.close()
        logger.info("aggregator stopped; offsets committed")
    }

    /// Processes one batch completely; nil when a stop was requested while waiting on Redis or
    /// Kafka. Returns messages polled while waiting (to be processed next, in order).
    private func process(_ batch: [KafkaMessage]) async -> [KafkaMessage]? {
        metrics.consumed.increment(by: Int64(batch.count))
        let (valid, dead) = planner.decode(batch)
        var extra: [KafkaMessage] = []

        if !dead.isEmpty {
            for letter in dead {
                metrics.deadLettered[letter.rejection.reason]?.increment()
                log.log(.warning, key: letter.rejection.reason.rawValue, "dead-lettered \(letter.source.position): \(letter.rejection)")
            }
            guard await retrying("dead-letter delivery", touchesRedis: false, &extra, { () async throws -> Void in try await deadLetters.write(dead) }) != nil else { return nil }
        }
        guard let redis, !valid.isEmpty else { return extra }

        let keys = planner.detectionKeys(valid)
        guard let detections = await retrying("detection fetch", &extra, { try await redis.send(.mget(keys)) }) else { return nil }
        let plan = planner.plan(valid, detections: detections)
        guard let outcome = await retrying("result writes", &extra, { try await writer.apply(plan, on: redis) }) else { return nil }
        metrics.published.increment(by: Int64(outcome.published))
        metrics.alertsPushed.increment(by: Int64(outcome.alertsPushed))
        metrics.alertsDeduplicated.increment(by: Int64(plan.alerts.count - outcome.alertsPushed))
        metrics.latestSkipped.increment(by: Int64(plan.latest.count - outcome.latestWritten))
        metrics.writeConflicts.increment(by: Int64(outcome.conflicts))
        metrics.detectionMissing.increment(by: Int64(plan.detectionMissing))
        metrics.redisReconnects.record(Int64(redis.statistics.reconnects))
        return extra
    }

    /// Runs `operation` until it succeeds. Between attempts the assigned partitions are paused
    /// and the consumer is polled for the back-off time, which keeps this member in its group;
    /// anything polled meanwhile is returned through `extra`. nil when a stop was requested.
    private func retrying<T>(_ what: String, touchesRedis: Bool = true, _ extra: inout [KafkaMessage], _ operation: () async throws -> T) async -> T? {
        var backoff = ReconnectBackoff(policy: .init(initialDelay: .milliseconds(50), maximumDelay: .seconds(2)))
        var paused: [KafkaTopicPartition] = []
        while true {
            do {
                let value = try await operation()
                if !paused.isEmpty {
                    try? consumer.resume(paused)
                    logger.info("\(what) succeeded again; consuming resumed")
                }
                if touchesRedis { markRedis(up: true) }
                return value
            } catch {
                if let redisError = error as? RedisError {
                    metrics.redisErrors.increment()
                    markRedis(up: false)
                    log.log(.error, key: "redis", "\(what) failed, retrying: \(redisError)")
                } else {
                    log.log(.error, key: "kafka", "\(what) failed, retrying: \(error)")
                }
                if isStopping { return nil }
                var delay = backoff.recordFailure()
                if let retryAfter = (error as? RedisError)?.retryAfter, retryAfter > delay { delay = retryAfter }
                if let assignment = try? consumer.assignment(), !assignment.isEmpty {
                    try? consumer.pause(assignment)
                    paused = assignment
                }
                if let polled = try? await consumer.nextBatch(maxMessages: configuration.batchSize, timeout: delay) {
                    extra += polled
                }
            }
        }
    }

    private func markRedis(up: Bool) {
        health.withLock { $0.redis = up }
        metrics.redisUp.record(up ? 1.0 : 0.0)
    }
}

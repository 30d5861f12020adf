import Foundation
import KafkaClient
import Logging
import RedisClient
import Synchronization
import TrafficModel

/// The aggregator's run loop: poll a batch → validate → dead-letter the bad → fetch detections
/// (one MGET) → plan → apply the plan (one `WriteTransaction`) → store offsets. The first stages
/// of a batch overlap the previous batch's write; writes run one at a time, in poll order.
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
    /// The connection the write transactions run on.
    private let redis: RedisClient?
    /// A second connection for detection reads, so they overlap the previous batch's write.
    private let detectionReader: RedisClient?
    private let deadLetters: DeadLetterWriter
    private let planner: WritePlanner
    private let writer: WriteTransaction
    private let logger: Logger
    private let log: RateLimitedLog
    private let stopping = Mutex(false)
    /// Lets a partition revoke wait for the write in flight, so the commit before the revoke
    /// includes it (see `KafkaConsumer.beforeRevoke`).
    private let writeGate = WriteGate()
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
            detectionReader = nil
        } else {
            var redisConfiguration = try RedisConfiguration(url: configuration.redisURL ?? "redis://127.0.0.1:6379")
            redisConfiguration.reconnect = .init(initialDelay: .milliseconds(50), maximumDelay: .seconds(2))
            redis = RedisClient(configuration: redisConfiguration, label: "aggregator", logger: Logger(label: "aggregator.redis"))
            detectionReader = RedisClient(configuration: redisConfiguration, label: "aggregator-detections", logger: Logger(label: "aggregator.redis"))
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
        consumer.beforeRevoke { [writeGate] _ in writeGate.waitForCurrent(timeout: .seconds(10)) }
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
        // Two stages overlap: while batch N's write transaction runs (on the writer's Redis
        // connection), batch N+1 is polled, validated, its detections fetched (on a second
        // connection) and planned. Writes still happen one batch at a time, in poll order, and a
        // batch's offsets are stored only after its write was acknowledged.
        var inFlight: InFlightWrite?
        while !isStopping {
            var batch = carried
            carried = []
            if batch.isEmpty {
                // With a write in flight, take only what is already here: finishing that batch
                // must not wait for new messages.
                batch = try await consumer.nextBatch(maxMessages: configuration.batchSize, timeout: inFlight == nil ? .milliseconds(100) : .zero, linger: inFlight == nil ? configuration.batchLinger : .zero)
            }
            if ContinuousClock.now - lastLagCheck > .seconds(2) {
                lastLagCheck = ContinuousClock.now
                if let lag = try? consumer.lag() { metrics.consumerLag.record(Int64(lag.values.reduce(0, +))) }
            }
            if batch.isEmpty {
                if let write = inFlight {
                    inFlight = nil
                    guard let extra = await finish(write) else { break }
                    carried = extra
                }
                continue
            }
            health.withLock { $0.kafka = true }
            metrics.kafkaUp.record(1.0)
            let started = ContinuousClock.now
            guard let (plan, extraWhilePreparing) = await prepare(batch) else {
                logger.notice("stopping during an outage: the batch being prepared is not committed and will be re-delivered")
                break
            }
            carried = extraWhilePreparing
            if let write = inFlight {
                inFlight = nil
                guard let extra = await finish(write) else { break }
                carried += extra
            }
            let attempt: Task<Result<WriteTransaction.Outcome, RedisError>, Never>?
            if let redis, let plan {
                let done = writeGate.begin()
                attempt = Task { [writer, batch] in
                    defer { done.signal() }
                    do throws(RedisError) {
                        let outcome = try await writer.apply(plan, on: redis)
                        // Stored at once (not when the loop gets back to it), so a revoke that
                        // waits for this write commits it.
                        self.storeOffsets(for: batch)
                        return .success(outcome)
                    } catch {
                        return .failure(error)
                    }
                }
            } else {
                // Nothing to write to Redis (all dead letters, or --no-redis): done now, and the
                // previous batch is finished, so its offsets can be stored at once, in order.
                attempt = nil
                storeOffsets(for: batch)
            }
            inFlight = InFlightWrite(batch: batch, plan: plan, attempt: attempt, started: started)
        }
        if let write = inFlight {
            // Stopping: the write already sent is awaited (not retried); its offsets are stored
            // only if it was acknowledged.
            if case .success(let outcome)? = await write.attempt?.value {
                record(outcome, of: write, offsetsStored: true)
            } else if write.attempt != nil {
                logger.notice("stopping: the last batch's write did not complete; it will be re-delivered")
            } else {
                record(nil, of: write, offsetsStored: true)
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

    /// A batch whose write transaction is running (or that had nothing to write to Redis).
    private struct InFlightWrite: Sendable {
        let batch: [KafkaMessage]
        let plan: WritePlan?
        /// The first write attempt; nil when the batch writes nothing to Redis.
        let attempt: Task<Result<WriteTransaction.Outcome, RedisError>, Never>?
        let started: ContinuousClock.Instant
    }

    /// Stage 1 of a batch: validate, dead-letter the bad, fetch detections, plan. Returns the plan
    /// (nil when there is nothing to write to Redis) and messages polled while waiting (to be
    /// processed next, in order); nil when a stop was requested while waiting on Redis or Kafka.
    private func prepare(_ batch: [KafkaMessage]) async -> (WritePlan?, [KafkaMessage])? {
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
        guard let detectionReader, !valid.isEmpty else { return (nil, extra) }

        let keys = planner.detectionKeys(valid)
        // Only the writer's results decide whether Redis counts as up.
        guard let detections = await retrying("detection fetch", touchesRedis: false, &extra, { try await detectionReader.send(.mget(keys)) }) else { return nil }
        let plan = planner.plan(valid, detections: detections)
        metrics.detectionMissing.increment(by: Int64(plan.detectionMissing))
        return (plan, extra)
    }

    /// Stage 2 of a batch: waits for its write (retrying with back-off while Redis fails), then
    /// stores its offsets. Returns messages polled while retrying; nil when a stop was requested.
    private func finish(_ write: InFlightWrite) async -> [KafkaMessage]? {
        var extra: [KafkaMessage] = []
        var outcome: WriteTransaction.Outcome?
        var offsetsStored = write.attempt == nil // stored when the batch was set in flight
        if let attempt = write.attempt, let redis, let plan = write.plan {
            switch await attempt.value {
            case .success(let value):
                markRedis(up: true)
                outcome = value
                offsetsStored = true
            case .failure(let error):
                metrics.redisErrors.increment()
                markRedis(up: false)
                log.log(.error, key: "redis", "result writes failed, retrying: \(error)")
                guard let value = await retrying("result writes", &extra, { try await writer.apply(plan, on: redis) }) else {
                    logger.notice("stopping during an outage: the in-flight batch is not committed and will be re-delivered")
                    return nil
                }
                outcome = value
            }
        }
        record(outcome, of: write, offsetsStored: offsetsStored)
        return extra
    }

    /// Counts a written batch and stores its offsets unless the write already did (committed by
    /// the consumer's interval).
    private func record(_ outcome: WriteTransaction.Outcome?, of write: InFlightWrite, offsetsStored: Bool) {
        if let outcome, let plan = write.plan {
            metrics.published.increment(by: Int64(outcome.published))
            metrics.alertsPushed.increment(by: Int64(outcome.alertsPushed))
            metrics.alertsDeduplicated.increment(by: Int64(plan.alerts.count - outcome.alertsPushed))
            metrics.latestSkipped.increment(by: Int64(plan.latest.count - outcome.latestWritten))
            metrics.writeConflicts.increment(by: Int64(outcome.conflicts))
            if !outcome.commandErrors.isEmpty {
                metrics.writeErrors.increment(by: Int64(outcome.commandErrors.count))
                log.log(.error, key: "write-errors", "\(outcome.commandErrors.count) commands of a batch failed inside its transaction (the rest was applied; not retried, to avoid publishing the batch again): \(outcome.commandErrors.prefix(3).joined(separator: "; "))")
            }
        }
        if let redis { metrics.redisReconnects.record(Int64(redis.statistics.reconnects)) }
        if !offsetsStored { storeOffsets(for: write.batch) }
        metrics.batchSize.record(Double(write.batch.count))
        metrics.batchLatency.record(ContinuousClock.now - write.started)
        let nowMs = Int64(Date().timeIntervalSince1970 * 1000)
        if let newest = write.batch.compactMap(\.timestampMilliseconds).max() {
            metrics.endToEndLag.record(.milliseconds(max(0, nowMs - newest)))
        }
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
                if let redisError = error as? RedisError, redisError.message.hasPrefix("TRYAGAIN") {
                    // Write conflicts with another writer: Redis is fine.
                    log.log(.warning, key: "conflicts", "\(what) kept conflicting with another writer, retrying: \(redisError)")
                } else if let redisError = error as? RedisError {
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

    private func storeOffsets(for batch: [KafkaMessage]) {
        do {
            try consumer.storeOffsets(for: batch)
        } catch {
            // Not fatal: the batch is re-delivered after a restart or rebalance (at least once).
            log.log(.error, key: "offsets", "storing offsets failed: \(error)")
        }
    }

    private func markRedis(up: Bool) {
        health.withLock { $0.redis = up }
        metrics.redisUp.record(up ? 1.0 : 0.0)
    }
}

/// Lets a partition revoke (on the consumer's poll thread) wait for the write transaction in
/// flight, which stores its batch's offsets when it succeeds.
final class WriteGate: Sendable {
    private let current = Mutex<DispatchSemaphore?>(nil)

    /// Marks a write as started; signal the returned semaphore when it has finished.
    func begin() -> DispatchSemaphore {
        let done = DispatchSemaphore(value: 0)
        current.withLock { $0 = done }
        return done
    }

    /// Waits up to `timeout` for the latest write to finish (at once when it already has).
    func waitForCurrent(timeout: Duration) {
        guard let done = current.withLock({ $0 }) else { return }
        let nanoseconds = Int(timeout.components.seconds) * 1_000_000_000 + Int(timeout.components.attoseconds / 1_000_000_000)
        if done.wait(timeout: .now() + .nanoseconds(nanoseconds)) == .success {
            done.signal() // stays open for any later waiter
        }
    }
}

import Foundation
import KafkaClient
public import Logging
import RedisClient
import Synchronization
import TrafficModel
import Websockets

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
    /// Replaced when its producer reports a fatal error (an idempotent producer then refuses
    /// everything).
    private let deadLetters: Mutex<DeadLetterWriter>
    private let planner: WritePlanner
    private let writer: WriteTransaction
    private let logger: Logger
    private let log: RateLimitedLog
    private let stopping = Mutex(false)
    /// Lets a partition revoke wait for the write in flight, so the commit before the revoke
    /// includes it (see `KafkaConsumer.beforeRevoke`).
    private let writeGate = WriteGate()
    private let health = Mutex((kafka: false, redis: false))
    /// Why the last Redis write failed (for `/healthz`), while Redis counts as down.
    private let redisProblem = Mutex<String?>(nil)
    /// Processing progress per partition, for the lag gauge and stall detection.
    private let progress: Mutex<PartitionProgress>
    private let bootstrap: String
    /// Partitions stalled at the last progress check.
    private let stalls = Mutex<[PartitionProgress.Stall]>([])

    /// Creates the consumer, dead-letter producer and Redis client; nothing runs until `run()`.
    public init(configuration: AggregatorConfiguration, bootstrap: String, metrics: AggregatorMetrics = AggregatorMetrics(), logger: Logger = Logger(label: "aggregator")) throws {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.log = RateLimitedLog(logger: logger)
        consumer = try KafkaConsumer(configuration: configuration.consumerProperties(bootstrap: bootstrap), logger: Logger(label: "aggregator.kafka"))
        let producer = try KafkaProducer(configuration: configuration.producerProperties(bootstrap: bootstrap), logger: Logger(label: "aggregator.dlq"))
        deadLetters = Mutex(DeadLetterWriter(producer: producer, topic: configuration.deadLetterTopic))
        self.bootstrap = bootstrap
        if configuration.noRedis {
            redis = nil
            detectionReader = nil
        } else {
            var redisConfiguration = try RedisConfiguration(url: configuration.redisURL ?? "redis://127.0.0.1:6379")
            redisConfiguration.reconnect = .init(initialDelay: .milliseconds(50), maximumDelay: .seconds(2))
            redis = RedisClient(configuration: redisConfiguration, label: "aggregator", logger: Logger(label: "aggregator.redis"))
            detectionReader = RedisClient(configuration: redisConfiguration, label: "aggregator-detections", logger: Logger(label: "aggregator.redis"))
        }
        planner = WritePlanner(keys: configuration.keys, alertRule: configuration.alertRule, maximumMessageBytes: configuration.maximumMessageBytes,
                               maximumResultBytes: configuration.maximumResultBytes, maximumClockSkew: configuration.maximumClockSkew,
                               maximumFrameBytes: configuration.maximumFrameBytes)
        progress = Mutex(PartitionProgress(threshold: configuration.stallThreshold))
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

    /// What `/healthz` reports: ready only when Kafka and Redis are up and no partition has had
    /// messages waiting without progress for longer than the stall threshold.
    public var healthReport: (ready: Bool, json: String) {
        let (kafka, redis) = isHealthy
        let stalled = stalls.withLock { $0 }
        var reasons: [String] = []
        if !kafka { reasons.append("Kafka brokers unreachable") }
        if !redis { reasons.append("Redis: " + (redisProblem.withLock { $0 } ?? "unreachable")) }
        for stall in stalled.prefix(8) { reasons.append(stall.description) }
        if stalled.count > 8 { reasons.append("and \(stalled.count - 8) more stalled partitions") }
        let ready = reasons.isEmpty
        let stalledJSON = stalled.map { #"{"partition":\#(JSONText.quoted("\($0.partition)")),"lag":\#($0.lag),"seconds":\#($0.waited.components.seconds)}"# }
        var json = #"{"ready":\#(ready),"kafka":\#(kafka),"redis":\#(redis),"stalled":[\#(stalledJSON.joined(separator: ","))]"#
        if !ready { json += #","reason":\#(JSONText.quoted(reasons.joined(separator: "; ")))"# }
        return (ready, json + "}")
    }

    /// Updates the lag gauge and the stalled partitions from the consumer's partition ends.
    private func checkProgress() {
        guard let positions = try? consumer.positions() else { return }
        var ends: [KafkaTopicPartition: Int64] = [:]
        var fetched: [KafkaTopicPartition: Int64] = [:]
        for (partition, state) in positions {
            ends[partition] = state.end
            if let position = state.position { fetched[partition] = position }
        }
        let now = ContinuousClock.now
        let (lag, stalled) = progress.withLock { progress in
            (progress.update(ends: ends, fetchPositions: fetched, now: now), progress.stalls(now: now))
        }
        metrics.consumerLag.record(lag)
        metrics.stalledPartitions.record(Int64(stalled.count))
        let before = stalls.withLock { current in
            defer { current = stalled }
            return current.count
        }
        if stalled.count > before, let first = stalled.first {
            logger.error("processing stalled: \(first) (\(stalled.count) partitions stalled)")
        }
    }

    /// Runs until `requestStop()`; then commits and closes the consumer. A Redis URL that can
    /// never work (a master name no sentinel knows, a refused password) ends it at once with
    /// that error; a Redis that is only unreachable is waited for.
    public func run() async throws {
        if let redis {
            do {
                _ = try await redis.send(.ping())
                markRedis(up: true)
            } catch where error.isConfigurationProblem {
                logger.critical("Redis cannot be used: \(error)")
                await consumer.close()
                throw error
            } catch {
                logger.warning("Redis not reachable at start; will retry", metadata: ["error": "\(error)"])
            }
        }
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
                case .statistics, .closed:
                    break
                }
            }
        }
        defer { events.cancel() }
        let monitor = Task { [configuration] in
            while !Task.isCancelled {
                try? await Task.sleep(for: configuration.progressInterval)
                self.checkProgress()
            }
        }
        defer { monitor.cancel() }
        var pipeline = BatchPipeline<KafkaMessage, PreparedBatch, InFlightWrite>()
        loop: while !isStopping {
            switch pipeline.next() {
            case .poll(let wait):
                let polled = try await consumer.nextBatch(maxMessages: configuration.batchSize, timeout: wait ? .milliseconds(100) : .zero,
                                                          linger: wait ? configuration.batchLinger : .zero)
                if !polled.isEmpty {
                    health.withLock { $0.kafka = true }
                    metrics.kafkaUp.record(1.0)
                }
                pipeline.polled(polled)
            case .prepare(let batch):
                let started = ContinuousClock.now
                guard let (plan, kept, rest) = await prepare(batch) else {
                    logger.notice("stopping during an outage: the batch being prepared is not committed and will be re-delivered")
                    break loop
                }
                // A batch over the byte budget was cut: the rest comes next.
                pipeline.prepared(PreparedBatch(batch: kept, plan: plan, started: started), rest: rest)
            case .finish(let write):
                guard let polled = await finish(write) else { break loop }
                pipeline.finished(polled: polled)
            case .start(let prepared):
                pipeline.started(startWrite(prepared))
            }
        }
        if let write = pipeline.inFlight {
            // Stopping: the write already sent is awaited (not retried); its offsets are stored
            // only if it was acknowledged.
            if case .success(let written)? = await write.attempt?.value, written.pending == nil {
                record(written.outcome, of: write, offsetsStored: true)
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

    /// A batch after stage 1: the part of the poll it covers and its plan (nil: nothing to
    /// write to Redis).
    struct PreparedBatch: Sendable {
        let batch: [KafkaMessage]
        let plan: WritePlan?
        let started: ContinuousClock.Instant
    }

    /// Starts a prepared batch's write (its predecessor has finished): on the writer's
    /// connection, its offsets stored the moment Redis acknowledges it (a revoke that waits for
    /// the write then commits them). A batch with nothing to write has its offsets stored now.
    private func startWrite(_ prepared: PreparedBatch) -> InFlightWrite {
        let attempt: Task<Result<WriteTransaction.Written, RedisError>, Never>?
        if let redis, let plan = prepared.plan {
            let done = writeGate.begin()
            let batch = prepared.batch
            attempt = Task { [writer] in
                defer { done.signal() }
                do throws(RedisError) {
                    let written = try await writer.write(plan, on: redis)
                    // Only a batch its replicas have (when any are required) counts as written.
                    if written.pending == nil { self.storeOffsets(for: batch) }
                    return .success(written)
                } catch {
                    return .failure(error)
                }
            }
        } else {
            attempt = nil
            storeOffsets(for: prepared.batch)
        }
        return InFlightWrite(batch: prepared.batch, plan: prepared.plan, attempt: attempt, started: prepared.started)
    }

    /// A batch whose write transaction is running (or that had nothing to write to Redis).
    struct InFlightWrite: Sendable {
        let batch: [KafkaMessage]
        let plan: WritePlan?
        /// The first write attempt; nil when the batch writes nothing to Redis.
        let attempt: Task<Result<WriteTransaction.Written, RedisError>, Never>?
        let started: ContinuousClock.Instant
    }

    /// Stage 1 of a batch: validate, fetch detections, keep the batch within its byte budget,
    /// dead-letter the bad, plan. Returns the plan (nil when there is nothing to write to Redis),
    /// the part of the batch it covers, and the messages to process next, in order (the part cut
    /// off, then those polled while waiting); nil when a stop was requested while waiting.
    private func prepare(_ batch: [KafkaMessage]) async -> (WritePlan?, [KafkaMessage], [KafkaMessage])? {
        progress.withLock { $0.seen(batch) }
        var (valid, sources, dead) = planner.decode(batch)
        var extra: [KafkaMessage] = []
        var kept = batch
        var detections: [[UInt8]?] = []
        if let detectionReader, !valid.isEmpty {
            let keys = planner.detectionKeys(valid)
            // Only the writer's results decide whether Redis counts as up.
            guard let fetched = await retrying("detection fetch", touchesRedis: false, &extra, { try await detectionReader.send(.mget(keys)) }) else { return nil }
            detections = fetched
            // Detections may carry megabytes of frame image each: a batch takes at most
            // `maximumBatchBytes` of them (at least one message); the rest waits for the next.
            var bytes = 0
            if let cut = valid.indices.first(where: { index in
                bytes += valid[index].bytes.count + (fetched[index]?.count ?? 0)
                return index > 0 && bytes > configuration.maximumBatchBytes
            }) {
                let boundary = sources[cut]
                let position = batch.firstIndex { $0.partition == boundary.partition && $0.offset == boundary.offset && $0.topic == boundary.topic } ?? batch.count
                kept = Array(batch[..<position])
                let remainder = Array(batch[position...])
                let keptIDs = Set(kept.map { "\($0.topic)\u{0}\($0.partition)\u{0}\($0.offset)" })
                dead = dead.filter { keptIDs.contains("\($0.source.topic)\u{0}\($0.source.partition)\u{0}\($0.source.offset)") }
                valid = Array(valid[..<cut])
                sources = Array(sources[..<cut])
                detections = Array(detections[..<cut])
                extra = remainder + extra
            }
        }
        metrics.consumed.increment(by: Int64(kept.count))

        guard await deliver(dead, &extra) else { return nil }
        guard detectionReader != nil, !valid.isEmpty else { return (nil, kept, extra) }
        let plan = planner.plan(valid, detections: detections)
        metrics.detectionMissing.increment(by: Int64(plan.detectionMissing))
        if plan.detectionCorrupt > 0 {
            metrics.detectionCorrupt.increment(by: Int64(plan.detectionCorrupt))
            log.log(.warning, key: "detection-corrupt", "\(plan.detectionCorrupt) detection records of a batch are not JSON objects; their results are published as detectionMissing")
        }
        if !plan.droppedDetectionFields.isEmpty {
            metrics.detectionFieldsDropped.increment(by: Int64(plan.droppedDetectionFields.count))
            log.log(.warning, key: "detection-reserved", "dropped detection fields the aggregator writes itself: \(Set(plan.droppedDetectionFields).sorted().joined(separator: ", "))")
        }
        metrics.framesStored.increment(by: Int64(plan.frames.count))
        if !plan.frameProblems.isEmpty {
            metrics.framesDropped.increment(by: Int64(plan.frameProblems.count))
            log.log(.warning, key: "frame-dropped", "frame images dropped: \(plan.frameProblems.prefix(3).joined(separator: "; "))")
        }
        guard await deliver(plan.rejected.map { DeadLetter(source: sources[$0.index], rejection: $0.rejection) }, &extra) else { return nil }
        return (plan.isEmpty ? nil : plan, kept, extra)
    }

    /// Counts, logs and writes dead letters, retrying transient failures until each one is
    /// written, written truncated or lost for good (never stalling on a permanent refusal).
    /// False when a stop was requested meanwhile.
    private func deliver(_ letters: [DeadLetter], _ extra: inout [KafkaMessage]) async -> Bool {
        guard !letters.isEmpty else { return true }
        for letter in letters {
            metrics.deadLettered[letter.rejection.reason]?.increment()
            log.log(.warning, key: letter.rejection.reason.rawValue, "dead-lettered \(letter.source.position): \(letter.rejection)")
        }
        var pending = letters
        let done: Void? = await retrying("dead-letter delivery", touchesRedis: false, &extra) { () async throws -> Void in
            let outcomes = await deadLetters.withLock { $0 }.write(pending)
            var failed: [DeadLetter] = []
            var firstError: KafkaError?
            for (letter, outcome) in zip(pending, outcomes) {
                switch outcome {
                case .delivered:
                    break
                case .truncated(let error):
                    metrics.deadLettersTruncated.increment()
                    log.log(.warning, key: "dlq-truncated", "dead letter \(letter.source.position) (\(letter.source.value.count) bytes) refused whole (\(error.codeName)); written truncated with its size and SHA-256")
                case .lost(let error):
                    metrics.deadLettersLost[letter.rejection.reason]?.increment()
                    log.log(.error, key: "dlq-lost", "dead letter \(letter.source.position) (\(letter.rejection.reason.rawValue), \(letter.source.value.count) bytes) refused even truncated; skipped: \(error)")
                case .failed(let error):
                    failed.append(letter)
                    firstError = firstError ?? error
                }
            }
            if let firstError, firstError.isFatal { replaceDeadLetterProducer(after: firstError) }
            pending = failed
            if let firstError { throw firstError }
        }
        return done != nil
    }

    /// Stage 2 of a batch: waits for its write (retrying with back-off while Redis fails), then
    /// stores its offsets. Returns messages polled while retrying; nil when a stop was requested.
    private func finish(_ write: InFlightWrite) async -> [KafkaMessage]? {
        var extra: [KafkaMessage] = []
        var outcome: WriteTransaction.Outcome?
        var offsetsStored = write.attempt == nil // stored when the batch was set in flight
        if let attempt = write.attempt, let redis, let plan = write.plan {
            // Written on the primary but not yet acknowledged by its replicas, when so.
            var unacknowledged: WriteTransaction.Written?
            switch await attempt.value {
            case .success(let value):
                if let pending = value.pending {
                    unacknowledged = value
                    let error = pending.error(writer.settings)
                    metrics.redisErrors.increment()
                    markRedis(up: false, error)
                    log.log(.error, key: "redis", "result writes not acknowledged by the replicas, waiting: \(error)")
                } else {
                    markRedis(up: true)
                    outcome = value.outcome
                    offsetsStored = true
                }
            case .failure(let error):
                metrics.redisErrors.increment()
                markRedis(up: false, error)
                log.log(.error, key: "redis", "result writes failed, retrying: \(error)")
            }
            if !offsetsStored {
                // Waits for the replicas on the connection that wrote the batch; writes it again
                // only when that connection is gone (the primary may have died with the batch).
                // Writing it again while it is on the primary would publish it twice.
                guard let value = await retrying("result writes", &extra, { () async throws(RedisError) -> WriteTransaction.Outcome in
                    if let batch = unacknowledged, let pending = batch.pending {
                        let still: WriteTransaction.PendingAcknowledgement?
                        do throws(RedisError) {
                            still = try await writer.awaitReplicas(pending, on: redis)
                        } catch where error.kind == .connectionLost || error.kind == .connectionFailed {
                            unacknowledged = nil
                            throw error
                        }
                        guard let still else { return batch.outcome }
                        unacknowledged?.pending = still
                        throw still.error(writer.settings)
                    }
                    let again = try await writer.write(plan, on: redis)
                    guard let still = again.pending else { return again.outcome }
                    unacknowledged = again
                    throw still.error(writer.settings)
                }) else {
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
                if let redisError = error as? RedisError, redisError.kind == .transactionConflict {
                    // Write conflicts with another writer: Redis is fine.
                    log.log(.warning, key: "conflicts", "\(what) kept conflicting with another writer, retrying: \(redisError)")
                } else if let redisError = error as? RedisError {
                    metrics.redisErrors.increment()
                    markRedis(up: false, redisError)
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

    /// A fatal producer error poisons the producer for good: make a new one (the retry then uses it).
    private func replaceDeadLetterProducer(after error: KafkaError) {
        do {
            let producer = try KafkaProducer(configuration: configuration.producerProperties(bootstrap: bootstrap), logger: Logger(label: "aggregator.dlq"))
            deadLetters.withLock { $0 = DeadLetterWriter(producer: producer, topic: configuration.deadLetterTopic) }
            logger.error("dead-letter producer failed fatally (\(error)); replaced it with a new one")
        } catch {
            logger.error("dead-letter producer failed fatally and a new one could not be made: \(error)")
        }
    }

    private func storeOffsets(for batch: [KafkaMessage]) {
        progress.withLock { $0.processed(batch, now: .now) }
        do {
            try consumer.storeOffsets(for: batch)
        } catch {
            // Not fatal: the batch is re-delivered after a restart or rebalance (at least once).
            log.log(.error, key: "offsets", "storing offsets failed: \(error)")
        }
    }

    private func markRedis(up: Bool, _ problem: RedisError? = nil) {
        health.withLock { $0.redis = up }
        redisProblem.withLock { $0 = up ? nil : problem.map { "\($0.kind.rawValue): \($0.message)" } }
        metrics.redisUp.record(up ? 1.0 : 0.0)
    }
}

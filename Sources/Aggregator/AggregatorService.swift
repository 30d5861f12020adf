import KafkaClient
public import Logging
import RedisClient
public import ServiceLifecycle
import TrafficModel

/// The aggregator as a swift-service-lifecycle `Service`. It runs the lifecycle only: the batch
/// loop (`BatchPipeline`) drives stage 1 (`BatchPreparation`: poll → validate → dead-letter the
/// bad → fetch detections → plan) and stage 2 (`BatchWriter`: one `WriteTransaction` → store
/// offsets); a batch's first stage overlaps the previous batch's write, and writes run one at a
/// time, in poll order. The group's graceful shutdown (or `requestStop()`) ends the loop after
/// the batch in flight; then offsets are committed and the group left.
///
/// At least once: offsets are stored only after every write of the batch was acknowledged and
/// every dead letter was delivered; stored offsets are committed every second, before a
/// rebalance takes partitions away, and on shutdown. While Redis is unreachable the loop keeps
/// the batch, pauses its partitions and keeps polling (`OutageRetry`), so the group does not
/// evict it; then it resumes where it stopped. What it knows of its health is one
/// `AggregatorHealth`; the executable serves it and the metrics over HTTP.
public final class AggregatorService: Service, Sendable {
    public let configuration: AggregatorConfiguration
    public let metrics: AggregatorMetrics
    private let healthState: AggregatorHealth
    private let consumer: KafkaConsumer
    /// The connection the write transactions run on; nil without Redis.
    private let redis: RedisClient?
    /// The cluster the writes go to instead, with a `redis-cluster://` URL.
    private let cluster: RedisClusterClient?
    private let preparation: BatchPreparation
    private let writer: BatchWriter
    private let progress: ProgressMonitor
    private let stop: StopRequest
    private let logger: Logger

    /// Creates the consumer, dead-letter producer and Redis clients; nothing runs until `run()`.
    public init(configuration: AggregatorConfiguration, bootstrap: String, metrics: AggregatorMetrics = AggregatorMetrics(), logger: Logger = Logger(label: "aggregator")) throws {
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        let log = RateLimitedLog(logger: logger)
        let stop = StopRequest()
        self.stop = stop
        let health = AggregatorHealth(redisRequired: !configuration.noRedis, metrics: metrics)
        healthState = health
        let consumer = try KafkaConsumer(configuration: configuration.consumerProperties(bootstrap: bootstrap), logger: Logger(label: "aggregator.kafka"))
        self.consumer = consumer
        let makeProducer: @Sendable () throws(KafkaError) -> KafkaProducer = {
            try KafkaProducer(configuration: configuration.producerProperties(bootstrap: bootstrap), logger: Logger(label: "aggregator.dlq"))
        }
        let producer = try makeProducer()
        let detectionReader: (any RedisRouting)?
        var keys = configuration.keys
        var settings = configuration.writeSettings
        var cluster: RedisClusterClient? = nil
        if configuration.noRedis {
            redis = nil
            detectionReader = nil
        } else {
            var redisConfiguration = try RedisConfiguration(url: configuration.redisURL ?? "redis://127.0.0.1:6379")
            redisConfiguration.reconnect = .init(initialDelay: .milliseconds(50), maximumDelay: .seconds(2))
            if redisConfiguration.isCluster {
                // Cluster mode: the camera id is every name's hash tag, results go to shard channels.
                if let problem = KeySchema.clusterProblem(namespace: keys.namespace) { throw RedisError(kind: .invalidConfiguration, message: problem) }
                keys.hashTagged = true
                settings.publishCommand = "SPUBLISH"
                settings.announcing = keys
                redis = nil
                cluster = try RedisClusterClient(configuration: redisConfiguration, label: "aggregator", logger: Logger(label: "aggregator.redis"))
                // Connections of their own for detection reads, so they overlap the previous batch's write.
                detectionReader = try RedisClusterClient(configuration: redisConfiguration, label: "aggregator-detections", logger: Logger(label: "aggregator.redis"))
            } else {
                redis = RedisClient(configuration: redisConfiguration, label: "aggregator", logger: Logger(label: "aggregator.redis"))
                // A second connection for detection reads, so they overlap the previous batch's write.
                detectionReader = RedisClient(configuration: redisConfiguration, label: "aggregator-detections", logger: Logger(label: "aggregator.redis"))
            }
        }
        let progress = ProgressMonitor(threshold: configuration.stallThreshold, consumer: consumer, health: health, metrics: metrics, log: log)
        self.progress = progress
        let retry = OutageRetry(consumer: consumer, batchSize: configuration.batchSize, health: health, metrics: metrics, log: log, stop: stop)
        let deadLetters = DeadLetterDelivery(writer: DeadLetterWriter(producer: producer, topic: configuration.deadLetterTopic),
                                             makeProducer: makeProducer, retry: retry, metrics: metrics, log: log)
        let planner = WritePlanner(keys: keys, alertRule: configuration.alertRule, maximumMessageBytes: configuration.maximumMessageBytes,
                                   maximumResultBytes: configuration.maximumResultBytes, maximumClockSkew: configuration.maximumClockSkew,
                                   maximumFrameBytes: configuration.maximumFrameBytes)
        preparation = BatchPreparation(planner: planner, detectionReader: detectionReader, maximumBatchBytes: configuration.maximumBatchBytes,
                                       deadLetters: deadLetters, retry: retry, progress: progress, consumer: consumer, metrics: metrics, log: log)
        self.cluster = cluster
        writer = BatchWriter(redis: redis, cluster: cluster, transaction: WriteTransaction(settings: settings), gate: WriteGate(), consumer: consumer,
                             progress: progress, retry: retry, health: health, metrics: metrics, log: log)
    }

    /// Asks the loop to finish its in-flight batch, commit and leave the group (what the
    /// group's graceful shutdown does; for running the service outside a group).
    public func requestStop() {
        stop.raise()
    }

    /// Kafka, Redis and stalled partitions at one instant (what `/healthz` reports).
    public var health: AggregatorHealth.Snapshot { healthState.snapshot() }

    /// Runs until graceful shutdown or `requestStop()`; then commits and closes the consumer.
    /// A Redis URL that can never work (a master name no sentinel knows, a refused password)
    /// ends it at once with that error; a Redis that is only unreachable is waited for.
    public func run() async throws {
        try await withGracefulShutdownHandler {
            try await runBatches()
        } onGracefulShutdown: { [logger, stop] in
            logger.notice("shutting down: finishing the in-flight batch, committing, leaving the group")
            stop.raise()
        }
    }

    private func runBatches() async throws {
        if redis != nil || cluster != nil {
            do {
                if let redis { _ = try await redis.send(.ping()) }
                if let cluster { try await cluster.refresh() } // the slot map: a node not in cluster mode fails here
                healthState.redis(up: true)
            } catch where error.isConfigurationProblem {
                logger.critical("Redis cannot be used: \(error)")
                await consumer.close()
                throw error
            } catch {
                logger.warning("Redis not reachable at start; will retry", metadata: ["error": "\(error)"])
            }
        }
        try consumer.subscribe(topics: [configuration.topic])
        consumer.beforeRevoke { [gate = writer.gate, logger] revoked in
            if gate.waitForCurrent(timeout: .seconds(10)) == .timedOut {
                logger.warning("partitions revoked while a batch's write still ran after 10 s; its offsets are not in this commit and the batch will be re-delivered to the partitions' next owner", metadata: ["partitions": "\(revoked)"])
            }
        }
        let events = followConsumerEvents()
        defer { events.cancel() }
        let monitor = Task { [progress, interval = configuration.progressInterval] in await progress.run(every: interval) }
        defer { monitor.cancel() }
        var pipeline = BatchPipeline<KafkaMessage, BatchPreparation.Prepared, BatchWriter.InFlight>()
        loop: while !stop.isRaised {
            switch pipeline.next() {
            case .poll(let wait):
                let polled = try await consumer.nextBatch(maxMessages: configuration.batchSize, timeout: wait ? .milliseconds(100) : .zero,
                                                          linger: wait ? configuration.batchLinger : .zero)
                if !polled.isEmpty { healthState.kafka(up: true) }
                pipeline.polled(polled)
            case .prepare(let batch):
                guard let (prepared, rest) = await preparation.prepare(batch) else {
                    logger.notice("stopping during an outage: the batch being prepared is not committed and will be re-delivered")
                    break loop
                }
                // A batch over the byte budget was cut: the rest comes next.
                pipeline.prepared(prepared, rest: rest)
            case .finish(let write):
                guard let polled = await writer.finish(write) else { break loop }
                pipeline.finished(polled: polled)
            case .start(let prepared):
                pipeline.started(writer.start(prepared))
            }
        }
        if let write = pipeline.inFlight { await writer.settle(stopping: write) }
        // The progress check reads the consumer's positions: it ends before the consumer closes.
        monitor.cancel()
        await monitor.value
        do {
            try await consumer.commit()
        } catch {
            logger.warning("final commit failed: \(error)")
        }
        await consumer.close()
        logger.info("aggregator stopped; offsets committed")
    }

    /// Kafka's health from the consumer's events: unreachable brokers, assignments.
    private func followConsumerEvents() -> Task<Void, Never> {
        Task { [consumer, healthState, logger] in
            for await event in consumer.events {
                switch event {
                case .error(let error, let fatal):
                    if error.isBrokerUnreachable { healthState.kafka(up: false) }
                    logger.log(level: fatal ? .critical : .warning, "Kafka: \(error)")
                case .assigned, .revoked:
                    healthState.kafka(up: true)
                case .statistics, .closed:
                    break
                }
            }
        }
    }
}

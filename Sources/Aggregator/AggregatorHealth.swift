import Durations
import KafkaClient
import RedisClient
import Synchronization
import TrafficModel

/// What the aggregator knows of its own health — Kafka reachable, Redis writes succeeding (and
/// why not), partitions stalled — behind one lock, so `/healthz` always reads one consistent
/// snapshot. It keeps the `kafka_up` and `redis_up` gauges in step with what it reports.
public final class AggregatorHealth: Sendable {
    /// One consistent reading.
    public struct Snapshot: Sendable, Equatable {
        /// Kafka answered recently.
        public var kafka: Bool
        /// The last Redis write succeeded (always true when the service runs without Redis).
        public var redis: Bool
        /// Why the last Redis write failed, while Redis counts as down.
        public var redisProblem: String?
        /// Partitions stalled at the last progress check.
        var stalled: [PartitionProgress.Stall]
        /// Why batches wait for replica acknowledgements, while they do (Redis itself answers).
        public var replicas: ReplicaShortfall?

        /// Why the service is not ready, in order; empty when it is.
        public var reasons: [String] {
            var reasons: [String] = []
            if !kafka { reasons.append("Kafka brokers unreachable") }
            if !redis { reasons.append("Redis: " + (redisProblem ?? "unreachable")) }
            if let replicas { reasons.append("Redis replicas: \(replicas)") }
            for stall in stalled.prefix(8) { reasons.append(stall.description) }
            if stalled.count > 8 { reasons.append("and \(stalled.count - 8) more stalled partitions") }
            return reasons
        }

        /// Ready only when Kafka and Redis are up and no partition has had messages waiting
        /// without progress for longer than the stall threshold.
        public var ready: Bool { reasons.isEmpty }

        /// The `/healthz` body.
        public var json: String {
            let reasons = reasons
            let stalledJSON = stalled.map { #"{"partition":\#(JSONText.quoted("\($0.partition)")),"lag":\#($0.lag),"seconds":\#($0.waitedSeconds)}"# }
            var json = #"{"ready":\#(reasons.isEmpty),"kafka":\#(kafka),"redis":\#(redis),"stalled":[\#(stalledJSON.joined(separator: ","))]"#
            if let replicas { json += #","replicas":\#(replicas.json)"# }
            if !reasons.isEmpty { json += #","reason":\#(JSONText.quoted(reasons.joined(separator: "; ")))"# }
            return json + "}"
        }
    }

    private struct State {
        var kafka = false
        var redis = false
        var redisProblem: String?
        var stalled: [PartitionProgress.Stall] = []
        var replicas: ReplicaShortfall?
        /// When the current run of unacknowledged batches began.
        var replicasWaitingSince: ContinuousClock.Instant?
    }

    private let state = Mutex(State())
    /// False when the service runs without Redis: Redis then always counts as up.
    private let redisRequired: Bool
    private let metrics: AggregatorMetrics

    init(redisRequired: Bool, metrics: AggregatorMetrics) {
        self.redisRequired = redisRequired
        self.metrics = metrics
    }

    /// Everything at one instant.
    public func snapshot() -> Snapshot {
        let state = state.withLock { $0 }
        var replicas = state.replicas
        if let since = state.replicasWaitingSince { replicas?.waitedSeconds = Int((ContinuousClock.now - since).wholeSeconds) }
        return Snapshot(kafka: state.kafka, redis: redisRequired ? state.redis : true,
                        redisProblem: redisRequired ? state.redisProblem : nil, stalled: state.stalled, replicas: replicas)
    }

    /// Kafka answered (a poll brought messages, partitions were assigned) or proved unreachable.
    func kafka(up: Bool) {
        state.withLock { state in
            state.kafka = up
            metrics.kafkaUp.record(up ? 1.0 : 0.0)
        }
    }

    /// A Redis write succeeded, or failed with `problem`.
    func redis(up: Bool, _ problem: RedisError? = nil) {
        state.withLock { state in
            state.redis = up
            state.redisProblem = up ? nil : problem.map { "\($0.kind.rawValue): \($0.message)" }
            metrics.redisUp.record(up ? 1.0 : 0.0)
        }
    }

    /// Batches wait for replica acknowledgements for `shortfall`'s reason (nil: a batch was
    /// acknowledged, or none are required). Redis answered, so it counts as up.
    /// Returns it with how long batches have waited so far.
    @discardableResult
    func replicas(_ shortfall: ReplicaShortfall?) -> ReplicaShortfall? {
        state.withLock { state in
            state.replicas = shortfall
            metrics.replicaAcksUnmet.record(shortfall == nil ? 0.0 : 1.0)
            guard var shortfall else {
                state.replicasWaitingSince = nil
                return nil
            }
            let since = state.replicasWaitingSince ?? .now
            state.replicasWaitingSince = since
            shortfall.waitedSeconds = Int((ContinuousClock.now - since).wholeSeconds)
            return shortfall
        }
    }

    /// The partitions stalled at this progress check; returns how many were stalled before.
    func stalls(_ stalled: [PartitionProgress.Stall]) -> Int {
        state.withLock { state in
            defer { state.stalled = stalled }
            return state.stalled.count
        }
    }
}

import Foundation
import KafkaClient
import RedisClient

/// Stage 2 of a batch: its write transaction on the writer's connection, one batch at a time in
/// poll order. Waits for the write (retrying while Redis fails, waiting for the replicas when
/// acknowledgements are required), stores the batch's offsets once Redis has it, and counts it.
struct BatchWriter: Sendable {
    /// A batch whose write transaction is running (or that had nothing to write to Redis).
    struct InFlight: Sendable {
        let batch: [KafkaMessage]
        let plan: WritePlan?
        /// The first write attempt; nil when the batch writes nothing to Redis.
        let attempt: Task<Result<WriteTransaction.Written, RedisError>, Never>?
        let started: ContinuousClock.Instant
    }

    /// The connection the write transactions run on; nil when the service runs without Redis,
    /// or on a cluster.
    let redis: RedisClient?
    /// The cluster the batches go to, camera by camera (`ClusterBatchWrite`), instead of `redis`.
    let cluster: RedisClusterClient?
    let transaction: WriteTransaction
    /// Lets a partition revoke wait for the write in flight, so the commit before the revoke
    /// includes it (see `KafkaConsumer.beforeRevoke`).
    let gate: WriteGate
    let consumer: KafkaConsumer
    let progress: ProgressMonitor
    let retry: OutageRetry
    let health: AggregatorHealth
    let metrics: AggregatorMetrics
    let log: RateLimitedLog

    /// Starts a prepared batch's write (its predecessor has finished), its offsets stored the
    /// moment Redis acknowledges it (a revoke that waits for the write then commits them). A
    /// batch with nothing to write has its offsets stored now.
    func start(_ prepared: BatchPreparation.Prepared) -> InFlight {
        let attempt: Task<Result<WriteTransaction.Written, RedisError>, Never>?
        if redis != nil || cluster != nil, let plan = prepared.plan {
            let done = gate.begin()
            let batch = prepared.batch
            attempt = Task { [self] in
                defer { done.signal() }
                do throws(RedisError) {
                    let written = try await writeOnce(plan)
                    // Only a batch its replicas have (when any are required) counts as written.
                    if written.pending == nil { storeOffsets(for: batch) }
                    return .success(written)
                } catch {
                    return .failure(error)
                }
            }
        } else {
            attempt = nil
            storeOffsets(for: prepared.batch)
        }
        return InFlight(batch: prepared.batch, plan: prepared.plan, attempt: attempt, started: prepared.started)
    }

    /// Waits for the write (retrying with back-off while Redis fails), then stores the batch's
    /// offsets. Returns messages polled while retrying; nil when a stop was requested.
    func finish(_ write: InFlight) async -> [KafkaMessage]? {
        var extra: [KafkaMessage] = []
        var outcome: WriteTransaction.Outcome?
        var offsetsStored = write.attempt == nil // stored when the batch was set in flight
        if let attempt = write.attempt, let plan = write.plan {
            // Written on the primary but not yet acknowledged by its replicas, when so.
            var unacknowledged: WriteTransaction.Written?
            switch await attempt.value {
            case .success(let value):
                if let pending = value.pending {
                    unacknowledged = value
                    health.redis(up: true)
                    _ = await shortfall(pending, on: redis)
                } else {
                    health.redis(up: true)
                    health.replicas(nil)
                    outcome = value.outcome
                    offsetsStored = true
                }
            case .failure(let error) where error.kind == .replicaAcknowledgement:
                // A cluster camera's `WAIT` came short (reported with its primary's replicas):
                // its primary answers, its replicas lag.
                health.redis(up: true)
            case .failure(let error):
                metrics.redisErrors.increment()
                health.redis(up: false, error)
                log.log(.error, key: "redis", "result writes failed, retrying: \(error)")
            }
            if !offsetsStored {
                // Waits for the replicas on the connection that wrote the batch; writes it again
                // only when that connection is gone (the primary may have died with the batch).
                // Writing it again while it is on the primary would publish it twice.
                guard let value = await retry.run("result writes", polled: &extra, { () async throws(RedisError) -> WriteTransaction.Outcome in
                    if let batch = unacknowledged, let pending = batch.pending, let redis {
                        let still: WriteTransaction.PendingAcknowledgement?
                        do throws(RedisError) {
                            still = try await transaction.awaitReplicas(pending, on: redis)
                        } catch where error.kind == .connectionLost || error.kind == .connectionFailed {
                            unacknowledged = nil
                            throw error
                        }
                        guard let still else { return batch.outcome }
                        unacknowledged?.pending = still
                        throw await shortfall(still, on: redis)
                    }
                    let again = try await writeOnce(plan)
                    guard let still = again.pending else { return again.outcome }
                    unacknowledged = again
                    throw await shortfall(still, on: redis)
                }) else {
                    log.logger.notice("stopping during an outage: the in-flight batch is not committed and will be re-delivered")
                    return nil
                }
                outcome = value
                health.replicas(nil)
            }
        }
        record(outcome, of: write, offsetsStored: offsetsStored)
        return extra
    }

    /// One attempt at writing the plan: its transaction on the one Redis, or on a cluster each
    /// camera's transaction on its primary (a short `WAIT` there fails the attempt: written again).
    private func writeOnce(_ plan: WritePlan) async throws(RedisError) -> WriteTransaction.Written {
        if let cluster {
            let write = ClusterBatchWrite(cluster: cluster, transaction: transaction, partitionEnd: partitionEnd) { [health, log] shortfall in
                log.log(.error, key: "replicas", "result writes not acknowledged by the replicas, writing the batch again: \(health.replicas(shortfall) ?? shortfall)")
            }
            let outcome = try await write.write(plan)
            health.replicas(nil)
            return WriteTransaction.Written(outcome: outcome)
        }
        guard let redis else { throw RedisError(kind: .invalidConfiguration, message: "no Redis to write to") }
        return try await transaction.write(plan, on: redis, partitionEnd: partitionEnd)
    }

    /// Asks the broker where a partition ends now, to confirm a topic reset that a message's
    /// cached watermark suggests; nil (logged) when it cannot tell: the cached one is used.
    var partitionEnd: WriteTransaction.PartitionEnd {
        { [consumer, log] partition in
            do throws(KafkaError) {
                return try await consumer.watermarks(topic: partition.topic, partition: partition.partition).high
            } catch {
                log.log(.warning, key: "watermarks", "the end of \(partition) could not be asked of the broker to confirm a topic reset; the consumer's cached one is used: \(error)")
                return nil
            }
        }
    }

    /// A batch on the primary that too few replicas acknowledged: asks the primary about its
    /// replicas (`INFO replication`) to say why in `/healthz`, logs it, and returns the error the
    /// retry waits on.
    private func shortfall(_ pending: WriteTransaction.PendingAcknowledgement, on redis: RedisClient?) async -> RedisError {
        let error = pending.error(transaction.settings)
        // Only a write on the one Redis waits for its replicas (a cluster's writes fail instead).
        guard let redis else { return error }
        let shortfall = await ReplicaShortfall.read(from: redis, required: transaction.settings.minimumReplicaAcks, acknowledged: pending.acknowledged)
        log.log(.error, key: "replicas", "result writes not acknowledged by the replicas, waiting: \(health.replicas(shortfall) ?? shortfall)")
        return error
    }

    /// Stopping with `write` in flight: the write already sent is awaited (not retried); its
    /// offsets are stored only if it was acknowledged.
    func settle(stopping write: InFlight) async {
        if case .success(let written)? = await write.attempt?.value, written.pending == nil {
            record(written.outcome, of: write, offsetsStored: true)
        } else if write.attempt != nil {
            log.logger.notice("stopping: the last batch's write did not complete; it will be re-delivered")
        } else {
            record(nil, of: write, offsetsStored: true)
        }
    }

    /// Counts a written batch and stores its offsets unless the write already did (committed by
    /// the consumer's interval).
    private func record(_ outcome: WriteTransaction.Outcome?, of write: InFlight, offsetsStored: Bool) {
        if let outcome, write.plan != nil {
            metrics.published.increment(by: Int64(outcome.published))
            metrics.alertsPushed.increment(by: Int64(outcome.alertsPushed))
            metrics.alertsDeduplicated.increment(by: Int64(outcome.alertsDeduplicated))
            metrics.writeConflicts.increment(by: Int64(outcome.conflicts))
            // Redeliveries (a killed member's successor, a batch written again) change nothing.
            metrics.redeliveredSkipped.increment(by: Int64(outcome.redeliveredSkipped))
            metrics.latestSkipped.increment(by: Int64(outcome.latestSkipped))
            if outcome.offsetResets > 0 {
                metrics.offsetResets.increment(by: Int64(outcome.offsetResets))
                log.log(.warning, key: "offset-reset", "\(outcome.offsetResets) messages applied although their camera's stored Kafka offset was at or past the partition's end: the topic was recreated (or lost its tail); the stored offsets are replaced")
            }
            if !outcome.commandErrors.isEmpty {
                metrics.writeErrors.increment(by: Int64(outcome.commandErrors.count))
                log.log(.error, key: "write-errors", "\(outcome.commandErrors.count) commands of a batch failed inside its transaction (the rest was applied; not retried, to avoid publishing the batch again): \(outcome.commandErrors.prefix(3).map(\.description).joined(separator: "; "))")
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

    private func storeOffsets(for batch: [KafkaMessage]) {
        progress.processed(batch)
        do throws(KafkaError) {
            try consumer.storeOffsets(for: batch)
        } catch {
            // Not fatal: the batch is re-delivered after a restart or rebalance (at least once).
            log.log(.error, key: "offsets", "storing offsets failed: \(error)")
        }
    }
}

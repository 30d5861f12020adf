import KafkaClient
import Logging
import Synchronization

/// Processing progress per partition (`PartitionProgress` behind its lock): fed as batches are
/// polled and processed, and checked every `progressInterval` against the partitions' ends
/// for the lag gauge and the stalls `/healthz` reports.
final class ProgressMonitor: Sendable {
    private let progress: Mutex<PartitionProgress>
    private let consumer: KafkaConsumer
    private let health: AggregatorHealth
    private let metrics: AggregatorMetrics
    private let log: RateLimitedLog

    init(threshold: Duration, consumer: KafkaConsumer, health: AggregatorHealth, metrics: AggregatorMetrics, log: RateLimitedLog) {
        progress = Mutex(PartitionProgress(threshold: threshold))
        self.consumer = consumer
        self.health = health
        self.metrics = metrics
        self.log = log
    }

    /// A batch was polled.
    func seen(_ batch: [KafkaMessage]) {
        progress.withLock { $0.seen(batch) }
    }

    /// A batch's results are written and its offsets stored.
    func processed(_ batch: [KafkaMessage]) {
        progress.withLock { $0.processed(batch, now: .now) }
    }

    /// Checks every `interval` until the task is cancelled.
    func run(every interval: Duration) async {
        while true {
            do {
                try await Task.sleep(for: interval)
            } catch {
                return // cancelled: the service is stopping
            }
            check()
        }
    }

    /// Updates the lag gauge and the stalled partitions from the consumer's partition ends.
    func check() {
        let positions: [KafkaTopicPartition: (position: Int64?, end: Int64)]
        do throws(KafkaError) {
            positions = try consumer.positions()
        } catch {
            log.log(.warning, key: "positions", "partition positions unavailable; lag and stalls not updated this time: \(error)")
            return
        }
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
        let before = health.stalls(stalled)
        if stalled.count > before, let first = stalled.first {
            log.logger.error("processing stalled: \(first) (\(stalled.count) partitions stalled)")
        }
    }
}

import KafkaClient
import Durations

/// Tells a stalled partition from an idle one: per assigned partition, how far processing got
/// (the next offset whose results are all written), how many messages wait behind it, and since
/// when messages have waited without processing advancing.
///
/// A plain state machine fed by the service (batches seen and processed) and by a periodic look
/// at the partitions' ends; no I/O, so it is tested on its own.
struct PartitionProgress: Sendable {
    /// One partition's state.
    struct Entry: Sendable, Equatable {
        /// The next offset to process; nil until the first message of the partition is seen.
        var next: Int64?
        /// The highest offset seen in a polled batch.
        var highestSeen: Int64 = -1
        /// Messages between `next` and the partition's end at the last update.
        var lag: Int64 = 0
        /// Since when messages have waited with no progress; nil while none wait.
        var waitingSince: ContinuousClock.Instant?
    }

    /// A partition that has not advanced for longer than the threshold with messages waiting.
    struct Stall: Sendable, Equatable, CustomStringConvertible {
        var partition: KafkaTopicPartition
        var lag: Int64
        var waited: Duration

        /// `waited` in whole seconds.
        var waitedSeconds: Int64 { waited.wholeSeconds }

        var description: String {
            "partition \(partition) has not advanced for \(waitedSeconds) s with \(lag) messages waiting"
        }
    }

    private(set) var entries: [KafkaTopicPartition: Entry] = [:]
    let threshold: Duration

    init(threshold: Duration) {
        self.threshold = threshold
    }

    private static func key(_ message: KafkaMessage) -> KafkaTopicPartition {
        KafkaTopicPartition(topic: message.topic, partition: message.partition)
    }

    /// A batch was polled: a partition seen for the first time starts at its first message.
    mutating func seen(_ batch: [KafkaMessage]) {
        for message in batch {
            let key = Self.key(message)
            var entry = entries[key, default: Entry()]
            if entry.next == nil { entry.next = message.offset }
            entry.highestSeen = max(entry.highestSeen, message.offset)
            entries[key] = entry
        }
    }

    /// A batch's results are written and its offsets stored: processing advanced.
    mutating func processed(_ batch: [KafkaMessage], now: ContinuousClock.Instant) {
        for message in batch {
            let key = Self.key(message)
            var entry = entries[key, default: Entry()]
            if message.offset + 1 > entry.next ?? Int64.min {
                entry.next = message.offset + 1
                if entry.waitingSince != nil { entry.waitingSince = now }
            }
            entries[key] = entry
        }
    }

    /// Takes the assigned partitions' ends (high watermarks; the last stable offset for a
    /// read_committed consumer) and the consumer's fetch positions; forgets partitions no longer
    /// assigned. Returns the total lag.
    ///
    /// When every message seen has been processed, processing has caught up with the fetch
    /// position: offsets that never arrive as messages (transaction markers, aborted records)
    /// then count as done instead of waiting forever.
    @discardableResult
    mutating func update(ends: [KafkaTopicPartition: Int64], fetchPositions: [KafkaTopicPartition: Int64], now: ContinuousClock.Instant) -> Int64 {
        for key in entries.keys where ends[key] == nil { entries[key] = nil }
        var total: Int64 = 0
        for (key, end) in ends {
            var entry = entries[key, default: Entry()]
            if let fetched = fetchPositions[key], (entry.next ?? Int64.min) > entry.highestSeen {
                if fetched > (entry.next ?? Int64.min) {
                    if entry.waitingSince != nil { entry.waitingSince = now }
                    entry.next = fetched
                }
            }
            let start = entry.next ?? fetchPositions[key] ?? end
            entry.lag = max(0, end - start)
            if entry.lag == 0 {
                entry.waitingSince = nil
            } else if entry.waitingSince == nil {
                entry.waitingSince = now
            }
            total += entry.lag
            entries[key] = entry
        }
        return total
    }

    /// Partitions whose messages have waited longer than the threshold without progress.
    func stalls(now: ContinuousClock.Instant) -> [Stall] {
        entries.compactMap { key, entry in
            guard let since = entry.waitingSince, entry.lag > 0, now - since > threshold else { return nil }
            return Stall(partition: key, lag: entry.lag, waited: now - since)
        }.sorted { ($0.partition.topic, $0.partition.partition) < ($1.partition.topic, $1.partition.partition) }
    }
}

import KafkaClient
import Logging
import RedisClient
import Backoff

/// Waits out a Redis or Kafka outage without leaving the consumer group: an operation is run
/// until it succeeds; between attempts the assigned partitions are paused and the consumer is
/// polled for the back-off time (which keeps this member in its group), and whatever arrives
/// meanwhile is handed back to be processed next, in order. A stop request ends the wait.
struct OutageRetry: Sendable {
    let consumer: KafkaConsumer
    /// Messages one poll may return.
    let batchSize: Int
    let health: AggregatorHealth
    let metrics: AggregatorMetrics
    let log: RateLimitedLog
    let stop: StopRequest
    var policy = ReconnectBackoff.Policy(initialDelay: .milliseconds(50), maximumDelay: .seconds(2))

    /// Whether `error` is a write that kept conflicting with another writer (the client's own
    /// "try again" after its transaction retries) or was put off for want of something outside
    /// Redis (`.deferred`: a partition's end the broker could not tell): Redis is fine then. The
    /// one place the aggregator tells a conflict from an outage.
    static func isWriteConflict(_ error: RedisError) -> Bool {
        error.kind == .transactionConflict || error.kind == .deferred
    }

    /// Runs `operation` until it succeeds and consuming is resumed; messages polled meanwhile
    /// are appended to `extra`. nil when a stop was requested before it succeeded.
    /// `touchesRedis`: its success shows that Redis is up.
    func run<T>(_ what: String, touchesRedis: Bool = true, polled extra: inout [KafkaMessage], _ operation: () async throws -> T) async -> T? {
        var backoff = ReconnectBackoff(policy: policy)
        var paused: [KafkaTopicPartition] = []
        var outcome: T?
        while outcome == nil {
            do {
                outcome = try await operation()
            } catch {
                report(error, of: what)
                if stop.isRaised { return nil }
                var delay = backoff.recordFailure()
                if let retryAfter = (error as? RedisError)?.retryAfter, retryAfter > delay { delay = retryAfter }
                pauseAssignment(&paused, during: what)
                guard await poll(for: delay, during: what, into: &extra) else { return nil }
            }
        }
        if touchesRedis { health.redis(up: true) }
        // Partitions left paused would never be consumed again: resuming is retried too.
        while !paused.isEmpty {
            do throws(KafkaError) {
                try consumer.resume(paused)
                paused = []
                log.logger.info("\(what) succeeded again; consuming resumed")
            } catch {
                log.log(.error, key: "resume", "\(what) succeeded again, but consuming could not be resumed; retrying: \(error)")
                if stop.isRaised { break } // the consumer is closed next: nothing stays paused
                guard await poll(for: backoff.recordFailure(), during: what, into: &extra) else { break }
            }
        }
        return outcome
    }

    /// Counts and logs a failed attempt; a Redis failure that is no conflict marks Redis down.
    private func report(_ error: any Error, of what: String) {
        if let redisError = error as? RedisError, Self.isWriteConflict(redisError) {
            log.log(.warning, key: "conflicts", "\(what) put off, retrying: \(redisError)")
        } else if let redisError = error as? RedisError, redisError.kind == .replicaAcknowledgement {
            // Redis answers; its replicas do not keep up. The writer reported why (`ReplicaShortfall`).
            health.redis(up: true)
        } else if let redisError = error as? RedisError {
            metrics.redisErrors.increment()
            health.redis(up: false, redisError)
            log.log(.error, key: "redis", "\(what) failed, retrying: \(redisError)")
        } else {
            log.log(.error, key: "kafka", "\(what) failed, retrying: \(error)")
        }
    }

    /// Pauses the partitions assigned now (a rebalance may have changed them) and remembers
    /// them in `paused`; a failure leaves the consumer fetching, which only costs memory.
    private func pauseAssignment(_ paused: inout [KafkaTopicPartition], during what: String) {
        do throws(KafkaError) {
            let assignment = try consumer.assignment()
            guard !assignment.isEmpty else { return }
            try consumer.pause(assignment)
            paused = assignment
        } catch {
            log.log(.warning, key: "pause", "partitions not paused while \(what) is retried (what arrives meanwhile is kept): \(error)")
        }
    }

    /// Polls for `delay` (which keeps this member in its group); when polling fails, waits
    /// out the delay instead. False when the task was cancelled.
    private func poll(for delay: Duration, during what: String, into extra: inout [KafkaMessage]) async -> Bool {
        do throws(KafkaError) {
            extra += try await consumer.nextBatch(maxMessages: batchSize, timeout: delay)
            return true
        } catch {
            log.log(.warning, key: "kafka", "polling while \(what) is retried failed: \(error)")
        }
        do {
            try await Task.sleep(for: delay)
            return true
        } catch {
            return false
        }
    }
}

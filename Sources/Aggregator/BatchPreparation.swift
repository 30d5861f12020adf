import KafkaClient
import RedisClient
import TrafficModel

/// Stage 1 of a batch: validate, fetch the detections (one MGET on a connection of its own, so
/// it overlaps the previous batch's write), keep the batch within its byte budget, dead-letter
/// the bad, plan. Redis and Kafka outages are waited out through the outage retry.
struct BatchPreparation: Sendable {
    /// A batch after stage 1: the part of the poll it covers and its plan (nil: nothing to
    /// write to Redis).
    struct Prepared: Sendable {
        let batch: [KafkaMessage]
        let plan: WritePlan?
        let started: ContinuousClock.Instant
    }

    let planner: WritePlanner
    /// nil when the service runs without Redis.
    let detectionReader: (any RedisRouting)?
    /// Bytes of messages and detections one batch may hold.
    let maximumBatchBytes: Int
    let deadLetters: DeadLetterDelivery
    let retry: OutageRetry
    let progress: ProgressMonitor
    /// Where the messages' partitions end (high watermarks), for the redelivery check.
    let consumer: KafkaConsumer
    let metrics: AggregatorMetrics
    let log: RateLimitedLog

    /// Prepares `batch`. Returns the prepared part and the messages to process next, in order
    /// (the part cut off by the byte budget, then those polled while waiting); nil when a stop
    /// was requested while waiting.
    func prepare(_ batch: [KafkaMessage]) async -> (Prepared, rest: [KafkaMessage])? {
        let started = ContinuousClock.now
        progress.seen(batch)
        var (valid, sources, dead) = planner.decode(batch)
        var extra: [KafkaMessage] = []
        var kept = batch
        var detections: [[UInt8]?] = []
        if let detectionReader, !valid.isEmpty {
            let keys = planner.detectionKeys(valid)
            // Only the writer's results decide whether Redis counts as up.
            guard let fetched = await retry.run("detection fetch", touchesRedis: false, polled: &extra, { try await detectionReader.values(of: keys) }) else { return nil }
            detections = fetched
            if let cut = budgetCut(valid, fetched) {
                // The rest waits for the next batch, ahead of anything polled meanwhile.
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

        guard await deadLetters.deliver(dead, polled: &extra) else { return nil }
        guard detectionReader != nil, !valid.isEmpty else { return (Prepared(batch: kept, plan: nil, started: started), extra) }
        let plan = planner.plan(valid, detections: detections, origins: origins(of: sources))
        count(plan)
        guard await deadLetters.deliver(plan.rejected.map { DeadLetter(source: sources[$0.index], rejection: $0.rejection) }, polled: &extra) else { return nil }
        return (Prepared(batch: kept, plan: plan.isEmpty ? nil : plan, started: started), extra)
    }

    /// Each message's place in Kafka with its partition's high watermark (no broker round trip;
    /// unknown when the consumer cannot tell, and then a stored offset past the end is not
    /// noticed: logged).
    private func origins(of sources: [KafkaMessage]) -> [MessageOrigin] {
        var ends: [KafkaTopicPartition: Int64] = [:]
        do throws(KafkaError) {
            for (partition, state) in try consumer.positions() { ends[partition] = state.end }
        } catch {
            log.log(.warning, key: "watermarks", "partition ends unknown for the redelivery check: \(error)")
        }
        return sources.map { message in
            MessageOrigin(topic: message.topic, partition: message.partition, offset: message.offset,
                          highWatermark: ends[KafkaTopicPartition(topic: message.topic, partition: message.partition)])
        }
    }

    /// Detections may carry megabytes of frame image each: a batch takes at most
    /// `maximumBatchBytes` of messages and detections (at least one message). The index of the
    /// first valid message that no longer fits; nil when all do.
    private func budgetCut(_ valid: [AssessmentMessage], _ detections: [[UInt8]?]) -> Int? {
        var bytes = 0
        return valid.indices.first { index in
            bytes += valid[index].bytes.count + (detections[index]?.count ?? 0)
            return index > 0 && bytes > maximumBatchBytes
        }
    }

    /// Counts (and logs, rate-limited) what planning found wrong with the detections and frames.
    private func count(_ plan: WritePlan) {
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
    }
}

import KafkaClient
import TrafficModel

/// The pure core of the aggregator: validation and planning, no I/O.
public struct WritePlanner: Sendable {
    public var keys: KeySchema
    public var alertRule: AlertRule
    public var maximumMessageBytes: Int

    public init(keys: KeySchema, alertRule: AlertRule, maximumMessageBytes: Int = AssessmentMessage.defaultMaximumBytes) {
        self.keys = keys
        self.alertRule = alertRule
        self.maximumMessageBytes = maximumMessageBytes
    }

    /// Splits a batch into valid assessments (in input order) and dead letters.
    public func decode(_ batch: [KafkaMessage]) -> (valid: [AssessmentMessage], deadLetters: [DeadLetter]) {
        var valid: [AssessmentMessage] = []
        var dead: [DeadLetter] = []
        valid.reserveCapacity(batch.count)
        for message in batch {
            do {
                valid.append(try AssessmentMessage(validating: message.value, maximumBytes: maximumMessageBytes))
            } catch {
                dead.append(DeadLetter(source: message, rejection: error))
            }
        }
        return (valid, dead)
    }

    /// The detection keys to fetch for `valid`, index-aligned.
    public func detectionKeys(_ valid: [AssessmentMessage]) -> [String] {
        valid.map { keys.detection($0.requestId) }
    }

    /// Plans the writes of a batch; `detections[i]` belongs to `valid[i]` (nil when missing).
    public func plan(_ valid: [AssessmentMessage], detections: [[UInt8]?]) -> WritePlan {
        precondition(valid.count == detections.count, "one detection slot per message")
        var plan = WritePlan()
        plan.publishes.reserveCapacity(valid.count)
        var newest: [Int: Int] = [:] // camera → index into plan.latest
        for (index, message) in valid.enumerated() {
            let merged = ResultMerger.merge(message, detection: detections[index])
            if merged.detectionMissing { plan.detectionMissing += 1 }
            let camera = message.cameraId
            let publishIndex = plan.publishes.count
            let slot: Int
            if let existing = newest[camera] {
                slot = existing
                // Within a batch the newest timestamp wins; on a tie the later message does.
                if message.timestampMilliseconds >= plan.latest[slot].timestampMilliseconds {
                    plan.latest[slot].timestampMilliseconds = message.timestampMilliseconds
                    plan.latest[slot].payload = merged.json
                    plan.latest[slot].publishIndex = publishIndex
                }
            } else {
                slot = plan.latest.count
                newest[camera] = slot
                plan.latest.append(WritePlan.LatestUpdate(
                    camera: camera, channel: keys.cameraChannel(camera), historyKey: keys.history(camera), positionKey: keys.position(camera),
                    key: keys.latest(camera), timestampKey: keys.latestTimestamp(camera),
                    timestampMilliseconds: message.timestampMilliseconds, payload: merged.json, publishIndex: publishIndex))
            }
            plan.publishes.append(.init(channel: plan.latest[slot].channel, payload: merged.json, cameraSlot: slot))
            if alertRule.isAlert(level: message.riskLevel, dangerousDriving: message.hasDangerousDriving) {
                plan.alerts.append(.init(camera: camera, requestId: message.requestId, markerKey: keys.alerted(message.requestId), listKey: keys.alerts(camera), payload: merged.json, publishIndex: publishIndex))
            }
        }
        return plan
    }
}

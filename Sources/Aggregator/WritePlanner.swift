public import Foundation
public import TrafficModel
import Durations

/// What the planner reads from one input record: its bytes (a Kafka message, a test's literal,
/// a replayed dead letter — the planner does not care which).
public protocol PlannerInput: Sendable {
    var value: [UInt8] { get }
}

/// An input the planner refused, and why.
public struct Rejected<Source: PlannerInput>: Sendable {
    public var source: Source
    public var rejection: InputRejection

    public init(source: Source, rejection: InputRejection) {
        self.source = source
        self.rejection = rejection
    }
}

/// The pure core of the aggregator: validation and planning, no I/O.
public struct WritePlanner: Sendable {
    public var keys: KeySchema
    public var alertRule: AlertRule
    public var maximumMessageBytes: Int
    /// Largest published result (position included); larger ones are dead-lettered.
    public var maximumResultBytes: Int
    /// How far ahead of this clock a `timestamp` may be; nil accepts any.
    public var maximumClockSkew: Duration?
    /// Largest frame image kept (decoded); larger ones are dropped from their result.
    public var maximumFrameBytes: Int

    /// Room the write transaction needs for the position it splices into a result:
    /// `{"position":{"offset":` (21) + 19 digits + `,"epoch":"` (10) + a 64-character epoch + `"},` (3).
    static let positionAllowance = 117

    public init(keys: KeySchema, alertRule: AlertRule, maximumMessageBytes: Int = AssessmentMessage.defaultMaximumBytes,
                maximumResultBytes: Int = WritePlanner.defaultMaximumResultBytes, maximumClockSkew: Duration? = .seconds(300),
                maximumFrameBytes: Int = FrameImage.defaultMaximumBytes) {
        self.keys = keys
        self.alertRule = alertRule
        self.maximumMessageBytes = maximumMessageBytes
        self.maximumResultBytes = maximumResultBytes
        self.maximumClockSkew = maximumClockSkew
        self.maximumFrameBytes = maximumFrameBytes
    }

    /// Default bound of a published result: 256 KiB, the gateway's snapshot frame bound.
    public static let defaultMaximumResultBytes = 256 * 1024

    /// Splits a batch into valid assessments (in input order), the messages they came from
    /// (index-aligned) and dead letters. `now` is the clock timestamps are checked against.
    public func decode<Source: PlannerInput>(_ batch: [Source], now: Date = Date()) -> (valid: [AssessmentMessage], sources: [Source], deadLetters: [Rejected<Source>]) {
        var valid: [AssessmentMessage] = []
        var sources: [Source] = []
        var dead: [Rejected<Source>] = []
        valid.reserveCapacity(batch.count)
        sources.reserveCapacity(batch.count)
        let nowMilliseconds = Int64(now.timeIntervalSince1970 * 1000)
        // A skew too large to add (years) is no limit at all.
        let latestAccepted = maximumClockSkew.flatMap { skew -> Int64? in
            let (sum, overflow) = nowMilliseconds.addingReportingOverflow(skew.wholeMilliseconds)
            return overflow ? nil : sum
        }
        for message in batch {
            do throws(InputRejection) {
                let assessment = try AssessmentMessage(validating: message.value, maximumBytes: maximumMessageBytes)
                if let latestAccepted, assessment.timestampMilliseconds > latestAccepted {
                    let ahead = (assessment.timestampMilliseconds - nowMilliseconds) / 1000
                    throw InputRejection(.timestampInFuture, "field 'timestamp' is \(ahead) s ahead of the aggregator's clock (allowed skew \(latestAccepted - nowMilliseconds) ms)")
                }
                valid.append(assessment)
                sources.append(message)
            } catch {
                dead.append(Rejected(source: message, rejection: error))
            }
        }
        return (valid, sources, dead)
    }

    /// The detection keys to fetch for `valid`, index-aligned.
    public func detectionKeys(_ valid: [AssessmentMessage]) -> [String] {
        valid.map { keys.detection($0.requestId) }
    }

    /// Plans the writes of a batch; `detections[i]` belongs to `valid[i]` (nil when missing), and
    /// so does `origins[i]`, the message's place in Kafka (checked by the write transaction
    /// against what each camera applied; empty: results not from Kafka).
    public func plan(_ valid: [AssessmentMessage], detections: [[UInt8]?], origins: [MessageOrigin] = []) -> WritePlan {
        precondition(valid.count == detections.count, "one detection slot per message")
        precondition(origins.isEmpty || origins.count == valid.count, "one origin per message")
        var plan = WritePlan()
        plan.publishes.reserveCapacity(valid.count)
        var newest: [Int: Int] = [:] // camera → index into plan.latest
        for (index, message) in valid.enumerated() {
            let merged = ResultMerger.merge(message, detection: detections[index], maximumFrameBytes: maximumFrameBytes)
            if merged.json.count + Self.positionAllowance > maximumResultBytes {
                plan.rejected.append((index, InputRejection(.resultTooLarge, "merged result is \(merged.json.count) bytes (message \(message.bytes.count), detection \(detections[index]?.count ?? 0)), limit \(maximumResultBytes - Self.positionAllowance)")))
                continue
            }
            if merged.detectionMissing { plan.detectionMissing += 1 }
            if merged.detectionCorrupt { plan.detectionCorrupt += 1 }
            plan.droppedDetectionFields += merged.droppedFields
            if let problem = merged.frameProblem { plan.frameProblems.append("\(message.requestId): \(problem)") }
            let camera = message.cameraId
            let publishIndex = plan.publishes.count
            if let frame = merged.frame {
                plan.frames.append(.init(key: keys.frame(camera: camera, requestId: message.requestId), bytes: frame, publishIndex: publishIndex))
            }
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
            plan.publishes.append(.init(channel: plan.latest[slot].channel, payload: merged.json, cameraSlot: slot,
                                        timestampMilliseconds: message.timestampMilliseconds, origin: origins.isEmpty ? nil : origins[index]))
            if alertRule.isAlert(level: message.riskLevel, dangerousDriving: message.hasDangerousDriving) {
                plan.alerts.append(.init(camera: camera, requestId: message.requestId, listKey: keys.alerts(camera), alertedKey: keys.alerted(camera: camera), legacyMarkerKey: keys.legacyAlertMarker(message.requestId), payload: merged.json, publishIndex: publishIndex))
            }
        }
        return plan
    }
}

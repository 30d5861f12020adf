import Durations
import Aggregator
import ArgumentParser
import Foundation
import KafkaClient
import RedisClient
import TrafficModel
import Simulation

/// The aggregator's pure CPU work alone: validate, merge, plan, build the write transaction's
/// commands.
/// Compared with the end-to-end figure it tells how much of a result's cost is computation.
struct PlannerBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "planner",
        abstract: "CPU cost of decode → merge → plan → write commands, without I/O (breakdown for the end-to-end run)."
    )

    @Option(help: "Messages.") var messages = 50_000
    @Option(help: "Batch size.") var batchSize = 1_000

    func run() async throws {
        var simulator = ResultSimulator(cameras: 50, alertRatio: 0.2, seed: 1, runTag: "bench")
        let frames = (0..<messages).map { simulator.next(at: 1_760_000_000_000 + Int64($0)) }
        let batches = stride(from: 0, to: frames.count, by: batchSize).map { Array(frames[$0..<min($0 + batchSize, frames.count)]) }
        let planner = WritePlanner(keys: KeySchema(), alertRule: AlertRule())
        let writer = WriteTransaction()
        let clock = ContinuousClock()
        var decodeTime = Duration.zero, planTime = Duration.zero, argumentTime = Duration.zero
        var bytes = 0
        for batch in batches {
            let kafkaMessages = batch.enumerated().map { KafkaMessage(topic: "t", partition: 0, offset: Int64($0.offset), key: nil, value: $0.element.assessment) }
            let detections: [[UInt8]?] = batch.map(\.detection)
            let t0 = clock.now
            let (valid, _, _) = planner.decode(kafkaMessages)
            let t1 = clock.now
            let plan = planner.plan(valid, detections: detections)
            let t2 = clock.now
            let (commands, _) = try writer.commands(for: plan, readReplies: Self.transactionReads(plan))
            let t3 = clock.now
            bytes += commands.reduce(0) { $0 + $1.storage.count }
            decodeTime += t1 - t0
            planTime += t2 - t1
            argumentTime += t3 - t2
        }
        let total = decodeTime + planTime + argumentTime
        report("\(messages) results in batches of \(batchSize) (\(bytes / messages) B of command arguments per result)")
        report(String(format: "validate: %.2f µs/result", (decodeTime).inSeconds / Double(messages) * 1e6))
        report(String(format: "merge + plan: %.2f µs/result", (planTime).inSeconds / Double(messages) * 1e6))
        report(String(format: "write commands: %.2f µs/result", (argumentTime).inSeconds / Double(messages) * 1e6))
        report(String(format: "total: %.0f results/s on one core", Double(messages) / (total).inSeconds))
    }

    /// What the transaction's first round trip reads when the benchmark is the only writer:
    /// the counters it advanced so far (epoch "1"; none yet for a camera → a new epoch), no
    /// stored `latest` or Kafka offset, no requestId alerted before.
    static func transactionReads(_ plan: WritePlan, counters: [Int: Int64] = [:]) -> [RedisReply] {
        var replies: [RedisReply] = plan.latest.map { camera in
            counters[camera.camera].map { .array([.bulk(Array(String($0).utf8)), .bulk(Array("1".utf8)), .null, .null, .null, .null]) } ?? .array([.null, .null, .null, .null, .null, .null])
        }
        replies.append(.array(plan.latest.map { _ in .null }))
        replies += plan.alerts.map { _ in .null } // no requestId alerted before
        replies.append(.array([.bulk(Array("1760000000".utf8)), .bulk(Array("123456".utf8))]))
        return replies
    }
}

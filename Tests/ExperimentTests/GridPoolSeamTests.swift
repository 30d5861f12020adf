import Foundation
import RedisClient
import Synchronization
import Testing
import TestSupport
@testable import Regression
@testable import GridPool
import Backoff

/// The pool worker's parts tested alone, without Redis: the job cache, the patient retry, the
/// task-retry pauses, the event wire format and the model evaluation both paths share.
@Suite struct GridPoolSeamTests {
    static func job(rows: Int = 10) throws -> LoadedJob {
        LoadedJob(features: Matrix(rows: rows, columns: 1, values: (0..<rows).map(Double.init)), targets: (0..<rows).map { Double($0) * 2 },
                  folds: try KFold(rows: rows, folds: 2, seed: 1))
    }

    @Test func theJobCacheLoadsOnceForConcurrentAskersAndDropsTheLeastRecentlyUsed() async throws {
        let cache = JobCache(capacity: 2)
        let loads = Mutex<[String: Int]>([:])
        let loaded = try Self.job()
        let ask: @Sendable (String) async throws -> LoadedJob = { id in
            try await cache.job(id) { () throws(ExperimentError) in
                loads.withLock { $0[id, default: 0] += 1 }
                return loaded
            }
        }
        try await withThrowingTaskGroup(of: LoadedJob.self) { group in
            for _ in 0..<8 { group.addTask { try await ask("a") } }
            for try await job in group { #expect(job.targets == loaded.targets) }
        }
        #expect(loads.withLock { $0["a"] } == 1, "eight askers, one load")
        _ = try await ask("b")
        _ = try await ask("a") // a is the most recent now
        _ = try await ask("c") // evicts b
        #expect(await cache.cached == ["a", "c"])
        _ = try await ask("b")
        #expect(loads.withLock { $0 } == ["a": 1, "b": 2, "c": 1])
    }

    @Test func aFailedLoadIsTriedAgainByTheNextAsker() async throws {
        let cache = JobCache()
        let attempts = Mutex(0)
        let loaded = try Self.job()
        let load: @Sendable () async throws(ExperimentError) -> LoadedJob = { () throws(ExperimentError) in
            let attempt = attempts.withLock { $0 += 1; return $0 }
            if attempt == 1 { throw ExperimentError(.redis, "first load", isTransient: true) }
            return loaded
        }
        await #expect(throws: ExperimentError.self) { try await cache.job("j", load: load) }
        #expect(try await cache.job("j", load: load).targets == loaded.targets)
        #expect(attempts.withLock { $0 } == 2)
    }

    @Test func thePatientRetryWaitsOutTransientFailuresOnly() async throws {
        let lines = Mutex<[String]>([])
        let retry = PatientRetry(patience: .seconds(60), backoff: .init(initialDelay: .milliseconds(1), maximumDelay: .milliseconds(2))) { line in lines.withLock { $0.append(line) } }
        let calls = Mutex(0)
        let value = try await retry.run("a step") { () throws(ExperimentError) -> Int in
            let call = calls.withLock { $0 += 1; return $0 }
            if call < 4 { throw ExperimentError(.redis, "away", isTransient: true) }
            return call
        }
        #expect(value == 4 && lines.withLock { $0.count } == 1, "three transient failures, one log line: \(lines.withLock { $0 })")
        calls.withLock { $0 = 0 }
        await #expect(throws: ExperimentError.self) {
            try await retry.run("a refused step") { () throws(ExperimentError) -> Int in
                calls.withLock { $0 += 1 }
                throw ExperimentError(.redis, "WRONGTYPE")
            }
        }
        #expect(calls.withLock { $0 } == 1, "a lasting failure is not retried")
    }

    @Test func aRequestedStopEndsThePatientRetry() async throws {
        let stop = PoolStop()
        let retry = PatientRetry(patience: .seconds(600), backoff: .init(initialDelay: .milliseconds(1), maximumDelay: .milliseconds(5)))
        let calls = Mutex(0)
        await #expect(throws: ExperimentError.self) {
            try await retry.run("a step", stop: stop) { () throws(ExperimentError) -> Int in
                if calls.withLock({ $0 += 1; return $0 }) == 3 { stop.request() }
                throw ExperimentError(.redis, "away", isTransient: true)
            }
        }
        #expect(calls.withLock { $0 } == 3)
    }

    @Test func taskRetryPausesGrowWithTheAttemptsUpToTheCap() {
        let policy = ReconnectBackoff.Policy(initialDelay: .milliseconds(250), maximumDelay: .seconds(10), multiplier: 2, jitter: 0)
        let delays = (1...8).map { PoolWorker.retryDelay(after: $0, policy: policy, random: 0.5) }
        #expect(delays[0] == .milliseconds(250) && delays[1] == .milliseconds(500) && delays[2] == .seconds(1))
        #expect(delays.last == .seconds(10))
        #expect(zip(delays, delays.dropFirst()).allSatisfy { $0 <= $1 })
    }

    @Test func aPausedStopEndsThePauseAtOnce() async throws {
        let stop = PoolStop()
        let paused = Task { await stop.pause(.seconds(600)) }
        stop.request()
        try await withDeadline(.seconds(30), "the pause ends on the stop") { await paused.value }
    }

    @Test func eventsKeepTheirWireFormat() throws {
        var counts = JobCounts()
        counts.tasks = 9; counts.done = 8; counts.failed = 1
        let finished = try #require(try JSONSerialization.jsonObject(with: Data(PoolJSON.encode(PoolEvent.finished("j", counts), "event"))) as? [String: Any])
        #expect(finished["type"] as? String == "job" && finished["state"] as? String == "finished" && finished["done"] as? Int == 8 && finished["failed"] as? Int == 1 && finished["tasks"] as? Int == 9)
        var record = TaskRecord()
        record.state = .running
        record.attempts = 2
        let task = try #require(try JSONSerialization.jsonObject(with: Data(PoolJSON.encode(PoolEvent.task("j", "rf-0-1", record, worker: "w"), "event"))) as? [String: Any])
        #expect(task["type"] as? String == "task" && task["task"] as? String == "rf-0-1" && task["state"] as? String == "running" && task["worker"] as? String == "w" && task["attempts"] as? Int == 2)
        #expect(throws: ExperimentError.self) { try PoolJSON.decode(PoolEvent.self, from: Array(#"{"type":"other","job":"j"}"#.utf8), "event") }
    }

    /// The one evaluation: both the pipeline worker and a grid task score through it.
    @Test func theModelEvaluationScoresTheTestRowsAndRefusesNonFinitePredictions() async throws {
        let data = try Self.job(rows: 20)
        let evaluation = ModelEvaluation(train: data.folds.trainRows(0), test: data.folds.testRows[0])
        let outcome = try await evaluation.run(try LinearRegressor(parameters: [:]), features: data.features, targets: data.targets)
        #expect(outcome.actual == data.folds.testRows[0].map { data.targets[$0] })
        #expect(abs(outcome.metrics.r2 - 1) < 1e-9 && outcome.predicted.count == outcome.actual.count)
        let task = GridTask(id: "lr-0-0", algorithm: "lr", parameters: [:], parameterSet: 0, fold: 0)
        let result = try await PoolWorker.evaluate(task, data, worker: "w", threads: 1)
        #expect(result.metrics == outcome.metrics, "the grid's task scores exactly as the evaluation")
        let huge = LoadedJob(features: data.features, targets: data.targets.map { $0 * 1e308 }, folds: data.folds)
        await #expect(throws: ExperimentError.self) { _ = try await PoolWorker.evaluate(task, huge, worker: "w", threads: 1) }
        await #expect(throws: ExperimentError.self) { _ = try await ModelEvaluation(train: [], test: [0]).run(try LinearRegressor(parameters: [:]), features: data.features, targets: data.targets) }
    }
}

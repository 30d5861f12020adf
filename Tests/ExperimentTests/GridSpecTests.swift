import Foundation
import Testing
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool

/// The grid file of a grid search and its K-fold splits (groundwork of the distributed runner).
@Suite struct GridSpecTests {
    @Test func aGridExpandsToEveryCombinationCheckedByItsAlgorithm() throws {
        let text = """
        {
          "rf": {"n_estimators": [50, 100], "max_depth": [null, 8]},
          "svr": {"C": [0.5, 1, 2], "gamma": "scale"},
          "lr": {}
        }
        """
        let grid = try GridSpec.parse(Array(text.utf8), path: "grid.json")
        #expect(grid.entries.map(\.algorithm) == ["rf", "svr", "lr"])
        #expect(grid.entries[0].parameterSets.count == 4)
        #expect(grid.entries[0].parameterSets.contains(["n_estimators": "100", "max_depth": "none"]))
        #expect(grid.entries[1].parameterSets == [["C": "0.5", "gamma": "scale"], ["C": "1", "gamma": "scale"], ["C": "2", "gamma": "scale"]])
        #expect(grid.entries[2].parameterSets == [[:]])
        #expect(grid.parameterSetCount == 8)
    }

    @Test(arguments: [
        ("{\n  \"rf\": {\"n_estimators\": [50,\n}", "grid.json:3", "not a JSON object"),
        ("{\n  \"xgb\": {}\n}", "grid.json:2", "unknown algorithm 'xgb'"),
        ("{\n  \"rf\": {\n    \"n_estimator\": [5]\n  }\n}", "grid.json:3", "unknown parameter n_estimator"),
        ("{\n  \"svr\": {\"C\": [1, -1]}\n}", "grid.json:2", "svr: C=-1: expected a number > 0"),
        ("{\n  \"svr\": {\n    \"C\": [1,\n          -1]\n  }\n}", "grid.json:4", "C=-1"),
        ("{\n  \"rf\": {\"max_depth\": [4],\n         \"n_estimators\": [10, {\"a\": 1}]}\n}", "grid.json:3", "values must be numbers"),
        ("{\n  \"rf\": {\n    \"max_depth\": []\n  }\n}", "grid.json:3", "has no values"),
        ("{\n  \"rf\": {}, \"rf\": {}\n}", "grid.json:2", "appears twice"),
        ("{}", "grid.json:1", "names no algorithm"),
    ])
    func aBadGridIsRefusedWithItsLineAndReason(_ text: String, _ place: String, _ reason: String) {
        do {
            _ = try GridSpec.parse(Array(text.utf8), path: "grid.json")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.message.hasPrefix(place) && error.message.contains(reason), "\(error.message)")
        }
    }

    @Test func foldsAreSeededDisjointAndCoverEveryRow() throws {
        let folds = try KFold(rows: 103, folds: 5, seed: 42)
        #expect(folds.testRows.map(\.count) == [21, 21, 21, 20, 20], "the first rows % folds one row larger")
        #expect(Set(folds.testRows.flatMap { $0 }) == Set(0..<103) && folds.testRows.flatMap { $0 }.count == 103)
        #expect(folds.trainRows(2).count == 82 && Set(folds.trainRows(2)).isDisjoint(with: folds.testRows[2]))
        #expect(try KFold(rows: 103, folds: 5, seed: 42) == folds)
        #expect(try KFold(rows: 103, folds: 5, seed: 7) != folds)
        #expect(throws: ExperimentError.self) { try KFold(rows: 3, folds: 5, seed: 1) }
    }
}

/// Task planning and the task life cycle (pure state machines, no servers).
@Suite struct GridTaskTests {
    @Test func everyParameterSetAndFoldIsOneTaskWithAStableId() throws {
        let grid = try GridSpec.parse(Array(#"{"rf":{"max_depth":[2,4]},"lr":{}}"#.utf8), path: "g.json")
        let tasks = GridTask.plan(grid, folds: 3)
        #expect(tasks.count == 9)
        #expect(tasks.map(\.id) == ["rf-0-0", "rf-0-1", "rf-0-2", "rf-1-0", "rf-1-1", "rf-1-2", "lr-0-0", "lr-0-1", "lr-0-2"])
        #expect(tasks[3].parameters == ["max_depth": "4"] && tasks[3].fold == 0)
        #expect(Set(tasks.map(\.id)).count == tasks.count)
    }

    @Test func aTaskIsRetriedUntilItsAttemptsAreUsedUpThenFails() {
        let life = TaskLifecycle(maximumAttempts: 3)
        var record = TaskRecord()
        for attempt in 1...3 {
            record = life.start(record, worker: "w1", now: Double(attempt))!
            #expect(record.state == .running && record.attempts == attempt)
            record = life.fail(record, worker: "w1", error: "boom \(attempt)", now: Double(attempt))!
        }
        #expect(record.state == .failed && record.lastError == "boom 3" && record.attempts == 3)
        #expect(life.start(record, worker: "w2", now: 9) == nil, "a failed task is not started again")
    }

    @Test func aReclaimedTaskCountsAnAttemptAndSucceedsOnce() {
        let life = TaskLifecycle(maximumAttempts: 3)
        var record = life.start(TaskRecord(), worker: "dead", now: 1)!
        record = life.reclaim(record, by: "alive", reason: "worker dead gone", now: 5)!
        #expect(record.state == .running && record.worker == "alive" && record.attempts == 2)
        record = life.succeed(record, worker: "alive", now: 6)!
        #expect(record.state == .done)
        #expect(life.succeed(record, worker: "dead", now: 7) == nil, "the late first run changes nothing")
        var exhausted = TaskRecord()
        for n in 0..<3 { exhausted = life.start(exhausted, worker: "w0", now: Double(n))! }
        #expect(life.reclaim(exhausted, by: "w9", reason: "no heartbeat", now: 10)?.state == .failed)
        // A reclaim that fails the task keeps what the attempt before threw.
        var threw = life.start(TaskRecord(), worker: "a", now: 1)!
        threw = life.fail(threw, worker: "a", error: "boom", now: 2)!
        threw = life.start(life.start(threw, worker: "b", now: 3)!, worker: "b", now: 4)!
        let ended = life.reclaim(threw, by: "c", reason: "its worker b stopped answering", now: 5)!
        #expect(ended.state == .failed && ended.lastError?.contains("its worker b stopped answering") == true && ended.lastError?.contains("boom") == true, "\(ended)")
    }

    @Test func onlyTheWorkerRunningATaskFinishesItAndRepeatedWritesChangeNothing() {
        let life = TaskLifecycle(maximumAttempts: 3)
        let running = life.start(TaskRecord(), worker: "a", now: 1)!
        #expect(life.start(running, worker: "b", now: 2) == nil, "a duplicate delivery does not take over a running task")
        #expect(life.fail(running, worker: "b", error: "x", now: 2) == nil && life.succeed(running, worker: "b", now: 2) == nil)
        let done = life.succeed(running, worker: "a", now: 3)!
        #expect(life.succeed(done, worker: "a", now: 3) == done, "the same success again (a lost reply) is a no-op")
        // A reclaim on the last attempt, applied twice, stays a start.
        var last = TaskRecord()
        last.attempts = 2
        last.state = .running
        last.worker = "dead"
        let reclaimed = life.reclaim(last, by: "c", reason: "gone", now: 7)!
        #expect(reclaimed.state == .running && reclaimed.attempts == 3)
        #expect(life.reclaim(reclaimed, by: "c", reason: "gone", now: 7) == reclaimed)
        let queued = life.fail(reclaimed, worker: "c", error: "boom", now: 8)!
        #expect(queued.state == .failed, "three attempts used")
    }
}

import Foundation
import Testing
@testable import Experiment

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
        ("{\n  \"rf\": {\n    \"n_estimator\": [5]\n  }\n}", "grid.json:2", "unknown parameter n_estimator"),
        ("{\n  \"svr\": {\"C\": [1, -1]}\n}", "grid.json:2", "--param C=-1"),
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

import Foundation
import RedisClient
import Testing
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool
import ReportHTML
import TrafficModel

/// Names and reasons holding a quote, a backslash, control characters and non-ASCII text come
/// back unchanged through every place that writes JSON by hand or by encoder: the stream format,
/// the results files and the reports (one quoter, `JSONText.quoted`; HTML through
/// `HTMLPage.escape`).
@Suite struct HostileTextRoundTripTests {
    static let hostile = "a\"b\\c\u{1}\td\ne — Zürich 東京 🚗"

    @Test func featureAndTargetNamesRoundTripThroughTheStreamFormat() throws {
        let names = [Self.hostile, "plain", "\u{7f}\u{2028}"]
        let header = StreamFormat.Header(featureNames: names, targetName: Self.hostile, sampleCount: 3, normalization: Normalization(minimum: [0, 1, 2], maximum: [1, 2, 3]))
        let fields = StreamFormat.headerFields(header)
        let decoded = try StreamFormat.decode(RedisStreamEntry(id: "1-0", fields: fields))
        #expect(decoded == .header(header))
        // The field is standard JSON, as Python's json.loads reads it.
        let raw = try #require(fields.first { $0.name == "feature_names" }).value
        #expect(try JSONSerialization.jsonObject(with: Data(raw)) as? [String] == names)
    }

    static func result(run: String = "1-0") -> AlgorithmResult {
        AlgorithmResult(
            algorithm: "lr", title: "LinearRegression", run: run, stream: "s",
            data: .init(samples: 10, features: 1, featureNames: [hostile], target: hostile),
            split: .init(seed: 1, testFraction: 0.2, train: 8, test: 2), parameters: ["note": hostile],
            metrics: RegressionMetrics(actual: [1, 2], predicted: [1, 2.5]), readSeconds: 0, fitSeconds: 0, predictSeconds: 0,
            testIndices: [0, 1], actual: [1, 2], predicted: [1, 2.5], host: "h", pid: 1, finishedAt: "t")
    }

    @Test func theCompletionEventIsValidJSONWhateverTheNames() throws {
        let event = ResultStore.completionEvent(Self.result(run: Self.hostile))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(event.utf8)) as? [String: Any])
        #expect(object["run"] as? String == Self.hostile && object["algorithm"] as? String == "lr" && object["mse"] as? Double == 0.125)
    }

    @Test func namesRoundTripThroughTheResultsFileAndTheReport() throws {
        let outcome = Self.result()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hostile-\(UUID().uuidString.prefix(8))").path
        let collector = Collector(keys: ExperimentKeys(stream: "s"), algorithms: ["lr"])
        let (json, html) = try collector.write(.init(run: "1-0", dataset: Self.hostile, results: ["lr": outcome]), to: directory)
        let document = try JSONDecoder().decode(TrainingResults.self, from: Data(contentsOf: URL(fileURLWithPath: json)))
        #expect(document.dataset.featureNames == [Self.hostile] && document.dataset.target == Self.hostile && document.dataset.name == Self.hostile)
        #expect(document.algorithms["lr"]?.parameters["note"] == Self.hostile)
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.contains(HTMLPage.escape(Self.hostile)), "the report shows the name, escaped")
        #expect(!page.contains("a\"b\\c"), "never unescaped inside the markup")
    }

    @Test func aFailureReasonRoundTripsThroughTheGridResultsAndTheirReport() throws {
        var results = GridResults(job: "j", dataset: Self.hostile, folds: 2, seed: 1, priority: "normal", created: "c", tasks: 1, done: 0, failed: 1,
                                  wallSeconds: 0, ranking: [], failures: [.init(task: "lr-0-0", attempts: 3, error: Self.hostile)], finaliser: "f", finalisedAt: "t")
        results.ranking = []
        let decoded = try GridResults.decode(results.encoded())
        #expect(decoded == results)
        let page = GridReportPage.html(results)
        #expect(page.contains(HTMLPage.escape(Self.hostile)))
    }

    @Test func aTaskFailureReasonRoundTripsThroughTheTaskRecordAndTheEvents() throws {
        var record = TaskRecord()
        record.lastError = Self.hostile
        #expect(try PoolJSON.decode(TaskRecord.self, from: PoolJSON.encode(record, "record"), "record") == record)
        let event = PoolEvent.task(job: Self.hostile, task: "t", state: .failed, worker: Self.hostile, attempts: 3)
        #expect(try PoolJSON.decode(PoolEvent.self, from: PoolJSON.encode(event, "event"), "event") == event)
    }
}

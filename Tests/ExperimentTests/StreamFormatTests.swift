import Foundation
import RedisClient
import Testing
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool

/// The task stream's wire format, both ways (pure).
@Suite struct StreamFormatTests {
    func entry(_ fields: [RedisStreamField], id: String = "1-0") -> RedisStreamEntry { RedisStreamEntry(id: id, fields: fields) }

    @Test func headerAndSamplesRoundTrip() throws {
        let header = StreamFormat.Header(featureNames: ["age", "bmi \"x\""], targetName: "target", sampleCount: 2,
                                         normalization: Normalization(minimum: [0.5, -1e-05], maximum: [80, 3.25]))
        let fields = StreamFormat.headerFields(header)
        #expect(fields.map(\.name) == ["type", "feature_names", "target_name", "n_samples", "normalization"])
        #expect(try StreamFormat.decode(entry(fields)) == .header(header), "normalisation round trip, names escaped")
        let sample = StreamFormat.sampleFields(taskID: 7, featureValues: [0.25, 1e-7, 1.0][...], target: "151.0")
        #expect(sample.map { "\($0.name)=\(String(decoding: $0.value, as: UTF8.self))" } == ["type=sample", "task_id=7", "feature_values=[0.25,1e-07,1.0]", "target=151.0"])
        #expect(try StreamFormat.decode(entry(sample)) == .sample(.init(taskID: 7, featureValues: [0.25, 1e-7, 1.0], target: 151)))
    }

    @Test func entriesInTheOriginalsFormatAreRead() throws {
        // What the Python dispatcher writes: no normalisation, Python's JSON spacing, float targets.
        let header = entry([RedisStreamField("type", "header"), RedisStreamField("feature_names", #"["age", "sex", "bmi"]"#),
                            RedisStreamField("n_samples", "442"), RedisStreamField("target_name", "target")])
        #expect(try StreamFormat.decode(header) == .header(.init(featureNames: ["age", "sex", "bmi"], targetName: "target", sampleCount: 442, normalization: nil)))
        let sample = entry([RedisStreamField("type", "sample"), RedisStreamField("task_id", "0"),
                            RedisStreamField("feature_values", "[0.6666666666666666, 1.0, 0.5822222222222222]"), RedisStreamField("target", "151.0")])
        #expect(try StreamFormat.decode(sample) == .sample(.init(taskID: 0, featureValues: [0.6666666666666666, 1.0, 0.5822222222222222], target: 151)))
    }

    @Test func malformedEntriesNameTheEntryAndField() {
        let cases: [([RedisStreamField], String)] = [
            ([RedisStreamField("type", "sample"), RedisStreamField("task_id", "x"), RedisStreamField("feature_values", "[1]"), RedisStreamField("target", "1")], "field 'task_id'"),
            ([RedisStreamField("type", "sample"), RedisStreamField("task_id", "1"), RedisStreamField("feature_values", "[1,nan]"), RedisStreamField("target", "1")], "field 'feature_values'"),
            ([RedisStreamField("type", "sample"), RedisStreamField("task_id", "1"), RedisStreamField("feature_values", "[1]")], "field 'target' is missing"),
            ([RedisStreamField("type", "header"), RedisStreamField("feature_names", "a,b"), RedisStreamField("n_samples", "2")], "field 'feature_names'"),
            ([RedisStreamField("type", "other")], "field 'type'"),
        ]
        for (fields, fragment) in cases {
            do {
                _ = try StreamFormat.decode(entry(fields, id: "9-1"))
                Issue.record("accepted \(fields)")
            } catch {
                #expect(error.message.contains("stream entry 9-1") && error.message.contains(fragment), "\(error.message)")
            }
        }
    }
}

/// Hostile streams are refused naming the entry, never crash a worker.
@Suite struct HostileStreamTests {
    @Test func anEmptyFeatureListIsRefused() {
        let header = RedisStreamEntry(id: "1-0", fields: [RedisStreamField("type", "header"), RedisStreamField("feature_names", "[]"), RedisStreamField("n_samples", "3")])
        #expect(throws: ExperimentError.self) { try StreamFormat.decode(header) }
    }
}

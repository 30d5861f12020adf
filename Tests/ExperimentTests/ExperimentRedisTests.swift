import Foundation
import RedisClient
import Testing
import TestSupport
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool

/// Dispatch, fan-out to the workers' consumer groups, re-runs, results — against a real
/// redis-server.
@Suite struct ExperimentRedisTests {
    static func dataset() throws -> Dataset {
        try Dataset.load(csv: Fixtures.path("friedman_small.csv"), target: "target")
    }

    @Test func dispatchedDataIsReadBackExactlyByEveryAlgorithmsGroup() async throws {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = ExperimentKeys(stream: uniqueName("tasks"))
        let data = try Self.dataset()
        let run = try await Dispatcher(keys: keys).dispatch(data, to: redis, replace: false)
        #expect(try await redis.send(.xlen(keys.stream)) == data.rowCount + 1)
        let normalized = data.normalization().apply(data.features)
        // Fan-out: each algorithm's group gets every sample.
        for algorithm in Regressors.names {
            let read = try await StreamReader(keys: keys, group: ExperimentKeys.group(algorithm), consumer: "test").read(redis)
            #expect(read.run == run)
            #expect(read.header.featureNames == data.featureNames && read.header.sampleCount == data.rowCount)
            #expect(read.header.normalization == data.normalization())
            #expect(read.features.values == normalized, "\(algorithm): the normalised values, bit for bit")
            #expect(read.targets == data.targets)
        }
        // An existing stream is refused unless replaced.
        await #expect(throws: ExperimentError.self) { _ = try await Dispatcher(keys: keys).dispatch(data, to: redis, replace: false) }
        let second = try await Dispatcher(keys: keys).dispatch(data, to: redis, replace: true)
        #expect(second != run)
        await redis.close()
        server.stop()
    }

    @Test func aStreamWrittenInTheOriginalsFormatIsRead() async throws {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = ExperimentKeys(stream: uniqueName("tasks"))
        // As the Python dispatcher writes it (its field order, no normalisation).
        _ = try await redis.send(.xadd(keys.stream, fields: [RedisStreamField("type", "header"), RedisStreamField("feature_names", #"["x0", "x1"]"#),
                                                             RedisStreamField("n_samples", "3"), RedisStreamField("target_name", "target")]))
        for (i, row) in [[0.0, 1.0], [0.5, 0.25], [1.0, 0.0]].enumerated() {
            _ = try await redis.send(.xadd(keys.stream, fields: [RedisStreamField("type", "sample"), RedisStreamField("task_id", String(i)),
                                                                 RedisStreamField("feature_values", "[\(row[0]), \(row[1])]"), RedisStreamField("target", "\(Double(i) * 10)")]))
        }
        let read = try await StreamReader(keys: keys, group: "group_lr", consumer: "test").read(redis)
        #expect(read.features.values == [0, 1, 0.5, 0.25, 1, 0])
        #expect(read.targets == [0, 10, 20])
        #expect(read.header.normalization == nil)
        await redis.close()
        server.stop()
    }

    @Test func aRerunAfterBusyGroupReadsEverythingAgainAndGivesIdenticalResults() async throws {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = ExperimentKeys(stream: uniqueName("tasks"))
        _ = try await Dispatcher(keys: keys).dispatch(try Self.dataset(), to: redis, replace: false)
        let worker = AlgorithmWorker(keys: keys, algorithm: RandomForestRegressor.self, parameters: ["n_estimators": "20"])
        let first = try await worker.run(redis: redis, reader: redis)
        let second = try await worker.run(redis: redis, reader: redis) // the group exists: BUSYGROUP → SETID 0
        #expect(first.data.samples == 300 && second.data.samples == 300)
        #expect(first.metrics == second.metrics)
        #expect(first.testIndices == second.testIndices && first.predicted == second.predicted)
        let stored = try await ResultStore(keys: keys).results(run: first.run, on: redis)
        #expect(stored["rf"]?.metrics == first.metrics)
        await redis.close()
        server.stop()
    }

    @Test(arguments: ["before", "range", "width"])
    func hostileSamplesAreRefusedNamingTheEntry(_ kind: String) async throws {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = ExperimentKeys(stream: uniqueName("tasks"))
        let sample = { (task: Int, values: String) in [RedisStreamField("type", "sample"), RedisStreamField("task_id", String(task)), RedisStreamField("feature_values", values), RedisStreamField("target", "1")] }
        if kind == "before" { _ = try await redis.send(.xadd(keys.stream, fields: sample(0, "[1,2]"))) }
        _ = try await redis.send(.xadd(keys.stream, fields: StreamFormat.headerFields(.init(featureNames: ["a", "b"], targetName: "t", sampleCount: 2, normalization: nil))))
        _ = try await redis.send(.xadd(keys.stream, fields: kind == "range" ? sample(1_000_000_000, "[1,2]") : kind == "width" ? sample(0, "[1,2,3]") : sample(0, "[1,2]")))
        var reader = StreamReader(keys: keys, group: "group_lr", consumer: "test")
        reader.timeout = .seconds(2)
        reader.block = .milliseconds(100)
        do {
            _ = try await reader.read(redis)
            Issue.record("\(kind): accepted")
        } catch {
            #expect(error.kind == .stream, "\(kind): \(error.message)")
            #expect(error.message.contains("entry"), "\(error.message)")
        }
        await redis.close()
        server.stop()
    }

    @Test func anIncompleteStreamFailsClearlyAfterTheTimeout() async throws {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = ExperimentKeys(stream: uniqueName("tasks"))
        _ = try await redis.send(.xadd(keys.stream, fields: StreamFormat.headerFields(.init(featureNames: ["a"], targetName: "t", sampleCount: 10, normalization: nil))))
        var reader = StreamReader(keys: keys, group: "group_lr", consumer: "test")
        reader.timeout = .seconds(1)
        reader.block = .milliseconds(100)
        do {
            _ = try await reader.read(redis)
            Issue.record("an incomplete stream was accepted")
        } catch {
            #expect(error.kind == .timeout)
            #expect(error.message.contains("still incomplete") && error.message.contains("0 of 10 samples"), "\(error.message)")
        }
        await redis.close()
        server.stop()
    }

    @Test func theCollectorWritesResultsAndAReportWithOneChartPerAlgorithm() async throws {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = ExperimentKeys(stream: uniqueName("tasks"))
        _ = try await Dispatcher(keys: keys).dispatch(try Self.dataset(), to: redis, replace: false)
        for algorithm in Regressors.all {
            _ = try await AlgorithmWorker(keys: keys, algorithm: algorithm, parameters: algorithm.name == "rf" ? ["n_estimators": "10"] : [:]).run(redis: redis, reader: redis)
        }
        let collector = Collector(keys: keys, algorithms: Regressors.names)
        let collected = try await collector.collect(from: redis)
        let output = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("report")).path
        let (jsonPath, htmlPath) = try collector.write(collected, to: output)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: jsonPath))) as? [String: Any])
        #expect((json["dataset"] as? [String: Any])?["name"] as? String == "friedman_small.csv")
        let algorithms = try #require(json["algorithms"] as? [String: Any])
        #expect(Set(algorithms.keys) == ["rf", "svr", "lr"])
        for (_, value) in algorithms {
            let result = try #require(value as? [String: Any])
            #expect((result["test_indices"] as? [Int])?.count == 60)
            #expect((result["metrics"] as? [String: Any])?["mse"] != nil)
            #expect(result["fit_seconds"] != nil && result["parameters"] != nil)
        }
        #expect(json["versions"] != nil && json["split"] != nil)
        let html = try String(contentsOfFile: htmlPath, encoding: .utf8)
        #expect(ReportChecks.isBalanced(html), "every element closed, in order")
        #expect(html.components(separatedBy: #"<rect class="bar""#).count - 1 == 3, "one bar per algorithm")
        #expect(html.components(separatedBy: #"<figure class="scatter""#).count - 1 == 3, "one scatter per algorithm")
        #expect(!html.contains("http://") && !html.contains("https://"), "self-contained")
        await redis.close()
        server.stop()
    }
}

/// Structural checks of generated HTML.
enum ReportChecks {
    /// Every non-void element is closed, and in the order opened.
    static func isBalanced(_ html: String) -> Bool {
        let void: Set<String> = ["meta", "link", "br", "img", "input", "hr", "line", "circle", "rect", "path"]
        var stack: [String] = []
        var rest = Substring(html)
        while let open = rest.firstIndex(of: "<") {
            guard let close = rest[open...].firstIndex(of: ">") else { return false }
            let tag = rest[rest.index(after: open)..<close]
            rest = rest[rest.index(after: close)...]
            if tag.hasPrefix("!") { continue }
            let selfClosing = tag.hasSuffix("/")
            let name = tag.drop { $0 == "/" }.prefix { $0.isLetter || $0.isNumber }.lowercased()
            if tag.hasPrefix("/") {
                guard stack.popLast() == name else { return false }
            } else if !selfClosing && !void.contains(name) {
                stack.append(name)
            }
        }
        return stack.isEmpty
    }
}

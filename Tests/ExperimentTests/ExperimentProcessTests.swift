import Foundation
import RedisClient
import Testing
import TestSupport
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool

/// The `traffic-experiment` executable as operators run it.
@Suite struct ExperimentProcessTests {
    static var binary: String {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("traffic-experiment").path
    }

    /// Runs the tool to its end; returns its exit status and output.
    static func run(_ arguments: [String], in directory: String? = nil, environment: [String: String]? = nil) async throws -> (status: Int32, output: String) {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("experiment") + ".log").path
        var env = environment ?? ProcessInfo.processInfo.environment
        env["REDIS_URL"] = env["REDIS_URL"] ?? ""
        let process = try ChildProcess(binary, arguments, environment: env, output: .appendToFile(log))
        let status = try await process.wait(timeout: .seconds(180))
        return (status, (try? String(contentsOfFile: log, encoding: .utf8)) ?? "") // try?: no log is an empty output
    }

    @Test func runDoesEveryStepOnARedisItStartsAndStopsAgain() async throws {
        let port = try FreePort.find()
        let output = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("out")).path
        let (status, text) = try await Self.run(["run", "--csv", Fixtures.path("friedman_small.csv"), "--target", "target", "--start-redis", "--port", String(port),
                                                 "--shutdown-redis", "--output", output, "--param", "rf.n_estimators=30"])
        #expect(status == 0, "\(text)")
        #expect(text.contains("[dispatch] started redis-server") && text.contains("[rf] done") && text.contains("[svr] done") && text.contains("[lr] done"), "\(text)")
        #expect(text.contains("SHUTDOWN sent"))
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: output + "/training_results.json"))) as? [String: Any])
        let rf = try #require((json["algorithms"] as? [String: Any])?["rf"] as? [String: Any])
        #expect((rf["parameters"] as? [String: String])?["n_estimators"] == "30", "the --param reached the rf worker")
        #expect(FileManager.default.fileExists(atPath: output + "/training_report.html"))
        try await waitUntil("its Redis is gone", timeout: .seconds(10)) {
            if case .nothing = await LocalRedis(port: port).probe() { return true }
            return false
        }
    }

    @Test func aBadCSVWritesNothingToRedis() async throws {
        let server = try await RedisServer()
        let csv = Fixtures.temporaryCSV("a,b,target\n1,2,3\n4,oops,6\n", name: "broken.csv")
        let (status, text) = try await Self.run(["dispatch", "--csv", csv, "--redis-url", server.url, "--stream", "bad_stream"])
        #expect(status == 1)
        #expect(text.contains("broken.csv:3:2 (column 'b'): 'oops' is not a number"), "\(text)")
        let redis = try await RedisClient.connect(configuration: server.configuration)
        #expect(try await redis.send(.exists(["bad_stream"])) == 0)
        await redis.close()
        server.stop()
    }

    @Test func aFailingWorkerFailsTheRunWithItsError() async throws {
        let server = try await RedisServer()
        // Nothing dispatched: every worker times out waiting for the data set.
        let (status, text) = try await Self.run(["run-all", "--redis-url", server.url, "--stream", uniqueName("empty"), "--timeout", "1", "--algorithms", "lr"])
        #expect(status == 1)
        #expect(text.contains("worker lr failed") && text.contains("still incomplete"), "\(text)")
        let (bad, badText) = try await Self.run(["run-all", "--redis-url", server.url, "--param", "n_estimators=5"])
        #expect(bad != 0 && badText.contains("name the algorithm"), "\(badText)")
        server.stop()
    }

    /// Never skipped: the test command (scripts/test.sh) makes the venv, and CI has shared/.
    @Test func theOriginalsWorkerReadsAStreamThisToolDispatched() async throws {
        try #require(PythonBaseline.available, "needs \(PythonBaseline.directory)/worker.py and python3 with redis, numpy and scikit-learn in .venv-bench: run scripts/bench-venv.sh")
        let server = try await RedisServer()
        let (status, text) = try await Self.run(["dispatch", "--csv", Fixtures.path("friedman_small.csv"), "--redis-url", server.url])
        #expect(status == 0, "\(text)")
        let worker = try ChildProcess(PythonBaseline.python, [PythonBaseline.directory + "/worker.py", "lr", "--port", String(server.port), "--idle-timeout", "20"],
                                      output: .appendToFile(FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("pyworker") + ".log").path))
        #expect(try await worker.wait(timeout: .seconds(120)) == 0)
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let results = try await redis.send(.lrange("results", start: 0, stop: -1))
        let result = try #require(try results.first.flatMap { try JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] })
        #expect(result["samples"] as? Int == 300 && result["features"] as? Int == 5, "the baseline read our header and every sample")
        await redis.close()
        server.stop()
    }
}

/// The Python baseline of the original framework, where Python with its libraries is present.
enum PythonBaseline {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../../shared/peers/experiment_py").standardized.path
    /// The venv `scripts/bench-venv.sh` makes (`BENCH_VENV`, as there, else `.venv-bench`).
    static let python = (ProcessInfo.processInfo.environment["BENCH_VENV"].flatMap { $0.isEmpty ? nil : $0 }
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.venv-bench").standardized.path) + "/bin/python"

    static let available: Bool = {
        FileManager.default.fileExists(atPath: directory + "/worker.py") && FileManager.default.isExecutableFile(atPath: python)
    }()
}

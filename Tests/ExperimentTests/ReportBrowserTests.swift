import Foundation
import RedisClient
import Testing
import TestSupport
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool

/// The reports in a real headless Chromium: rendered, screenshot kept in
/// `.build/test-output/training_report.png`. Skipped only with TRAFFIC_SKIP_BROWSER_TEST=1.
@Suite struct ReportBrowserTests {
    static let skipped = ProcessInfo.processInfo.environment["TRAFFIC_SKIP_BROWSER_TEST"] == "1"

    @Test(.disabled(if: skipped, "TRAFFIC_SKIP_BROWSER_TEST=1 is set"))
    func theReportRendersInABrowser() async throws {
        guard let chromium = which("chromium") ?? which("chromium-browser") else {
            Issue.record("chromium is not installed: run scripts/install-deps.sh chromium, or set TRAFFIC_SKIP_BROWSER_TEST=1")
            return
        }
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let keys = ExperimentKeys(stream: uniqueName("tasks"))
        _ = try await Dispatcher(keys: keys).dispatch(try Dataset.load(csv: Fixtures.path("friedman_small.csv"), target: "target"), to: redis, replace: false)
        for algorithm in Regressors.all { _ = try await AlgorithmWorker(keys: keys, algorithm: algorithm).run(redis: redis, reader: redis) }
        let collector = Collector(keys: keys, algorithms: Regressors.names)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("report")).path
        let (_, html) = try collector.write(try await collector.collect(from: redis), to: directory)
        try await Self.screenshot(html, as: "training_report.png", chromium: chromium)
        await redis.close()
        server.stop()
    }

    @Test(.disabled(if: skipped, "TRAFFIC_SKIP_BROWSER_TEST=1 is set"))
    func theGridReportRendersInABrowser() async throws {
        guard let chromium = which("chromium") ?? which("chromium-browser") else {
            Issue.record("chromium is not installed: run scripts/install-deps.sh chromium, or set TRAFFIC_SKIP_BROWSER_TEST=1")
            return
        }
        let pool = try await PoolSetup()
        let job = try await pool.job(#"{"rf": {"n_estimators": [10, 30], "max_depth": [null, 3]}, "svr": {"C": [0.5, 2]}, "lr": {}}"#)
        _ = try await PoolTests.runWorker(PoolWorker(keys: pool.keys, name: "solo"), server: pool.server) {
            try await pool.store.counts(job: job.id, on: pool.redis).isFinished
        }
        let results = try await Finaliser(keys: pool.keys, name: "test").rank(job: job.id, on: pool.redis)
        let (_, html) = try results.write(to: FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("grid")).path)
        let page = try String(contentsOfFile: html, encoding: .utf8)
        #expect(page.components(separatedBy: "<rect class=\"bar").count - 1 == 7, "one bar per parameter set")
        try await Self.screenshot(html, as: "grid_report.png", chromium: chromium)
        await pool.close()
    }

    /// Renders `html` in headless Chromium into `.build/test-output/<name>` and checks the PNG.
    static func screenshot(_ html: String, as name: String, chromium: String) async throws {
        let output = URL(fileURLWithPath: ProcessInfo.processInfo.environment["TEST_OUTPUT_DIR"] ?? ".build/test-output")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let shot = output.appendingPathComponent(name).path
        try? FileManager.default.removeItem(atPath: shot) // try?: no earlier screenshot
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("chromium")).path
        let browser = try ChildProcess(chromium, ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars",
                                                  "--user-data-dir=\(profile)", "--window-size=1280,1100", "--screenshot=\(shot)", "file://\(html)"],
                                      output: .appendToFile(profile + ".log"))
        _ = try await browser.wait(timeout: .seconds(60))
        let png = try #require(FileManager.default.contents(atPath: shot), "Chromium wrote no screenshot")
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]) && png.count > 10_000, "a PNG with content")
        print("report screenshot: \(shot) (\(png.count) bytes)")
    }
}

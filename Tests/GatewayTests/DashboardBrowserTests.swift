import Foundation
import Logging
import Testing
import TestSupport
import TrafficModel
import Websockets
@testable import Gateway
import Simulation

/// The dashboard in a real headless Chromium, driven over the DevTools protocol.
///
/// Needs Debian's `chromium` (the test command installs it). Skipped only when
/// `TRAFFIC_SKIP_BROWSER_TEST=1` is set explicitly; a missing browser is a failure.
@Suite struct DashboardBrowserTests {
    static let skipped = ProcessInfo.processInfo.environment["TRAFFIC_SKIP_BROWSER_TEST"] == "1"

    @Test(.disabled(if: skipped, "TRAFFIC_SKIP_BROWSER_TEST=1 is set"))
    func dashboardShowsLiveResultsAndAlertsInABrowser() async throws {
        guard let chromium = which("chromium") ?? which("chromium-browser") else {
            Issue.record("chromium is not installed: run scripts/install-deps.sh chromium, or set TRAFFIC_SKIP_BROWSER_TEST=1 to skip this test on purpose")
            return
        }
        let h = try await GatewayHarness()
        for camera in 1...50 { try await h.publish(camera: camera, count: 2, level: ["none", "low", "medium", "high"][camera % 4]) }
        let profile = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("chromium"))
        try FileManager.default.createDirectory(at: profile, withIntermediateDirectories: true)
        let browser = try ChildProcess(chromium, [
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
            "--disable-extensions", "--hide-scrollbars", "--window-size=1440,900",
            "--remote-debugging-port=0", "--user-data-dir=\(profile.path)",
            "http://127.0.0.1:\(h.port)/",
        ], output: .appendToFile(profile.appendingPathComponent("chromium.log").path))
        defer {
            browser.terminate(grace: .seconds(2))
            try? FileManager.default.removeItem(at: profile) // try?: nothing to remove is fine
        }

        // DevTools: the port from DevToolsActivePort, the page's WebSocket from /json/list.
        var devtoolsPort = 0
        try await waitUntil("Chromium opens its DevTools port", timeout: .seconds(30)) {
            let text = (try? String(contentsOf: profile.appendingPathComponent("DevToolsActivePort"), encoding: .utf8)) ?? "" // try?: no file yet reads as empty
            devtoolsPort = Int(text.split(separator: "\n").first ?? "") ?? 0
            return devtoolsPort > 0
        }
        var pagePath = ""
        try await waitUntil("the dashboard page target exists", timeout: .seconds(20)) {
            let list = try? await httpGet(port: devtoolsPort, path: "/json/list") // try?: not listening yet is "not yet"
            let targets = list.flatMap { try? JSONSerialization.jsonObject(with: Data($0.body)) as? [[String: Any]] } ?? [] // try?: a payload that is no JSON object fails the expectation on it
            guard let page = targets.first(where: { $0["type"] as? String == "page" && ($0["url"] as? String)?.contains(":\(h.port)") == true }),
                  let url = page["webSocketDebuggerUrl"] as? String, let range = url.range(of: "/devtools/") else { return false }
            pagePath = String(url[range.lowerBound...])
            return true
        }
        let cdp = try WebSocketTestClients(port: devtoolsPort)
        let page = try await cdp.open(path: pagePath)
        var nextID = 0
        func call(_ method: String, _ params: String = "{}") async throws -> [String: Any] {
            nextID += 1
            let id = nextID
            cdp.send(#"{"id":\#(id),"method":"\#(method)","params":\#(params)}"#, to: page)
            var reply: [String: Any] = [:]
            try await waitUntil("DevTools answers \(method)", timeout: .seconds(10)) {
                guard let found = cdp.objects(page).first(where: { $0["id"] as? Int == id }) else { return false }
                reply = found
                return true
            }
            if let error = reply["error"] { throw WebSocketTestError(message: "\(method) failed: \(error)") }
            return reply["result"] as? [String: Any] ?? [:]
        }
        func evaluate(_ expression: String) async throws -> Any? {
            let escaped = String(decoding: try JSONSerialization.data(withJSONObject: [expression]), as: UTF8.self).dropFirst().dropLast()
            let result = try await call("Runtime.evaluate", #"{"expression":\#(escaped),"returnByValue":true}"#)
            return (result["result"] as? [String: Any])?["value"]
        }

        try await waitUntil("the page is live (connected, subscribed, snapshot shown)", timeout: .seconds(20)) {
            try await evaluate("document.getElementById('status').dataset.state") as? String == "live"
        }
        #expect(try await evaluate("document.querySelectorAll('.camera-card').length") as? Int == 50, "the snapshot shows all 50 cameras")

        // A result published to Redis shows on the page within a second.
        let live = try await h.publish(camera: 77, level: "medium")[0]
        try await waitUntil("camera 77's result is on the page", timeout: .seconds(1), every: .milliseconds(20)) {
            try await evaluate("document.querySelector('[data-camera=\"77\"]')?.dataset.request") as? String == live
        }
        #expect(try await evaluate("document.querySelector('[data-camera=\"77\"]').dataset.level") as? String == "medium")

        // A burst over every camera renders completely (batched per animation frame).
        var newest: [String] = []
        for camera in 1...50 {
            newest.append(try await h.publish(camera: camera, count: 3, level: ["low", "medium", "none", "low", "high", "low", "medium"][camera % 7], objects: camera % 9 + 1)[2])
        }
        let check = "[" + newest.enumerated().map { #"document.querySelector('[data-camera="\#($0.offset + 1)"]')?.dataset.request === '\#($0.element)'"# }.joined(separator: ",") + "].every(Boolean)"
        try await waitUntil("all 50 cameras show their newest result", timeout: .seconds(5), every: .milliseconds(50)) {
            try await evaluate(check) as? Bool == true
        }

        // A result with a frame shows the image with its detection box drawn over it.
        let framed = try await h.publish(camera: 12, level: "high", frameImage: FramePainter.png(width: 192, height: 108, boxes: [(100, 100, 600, 400)], scale: 10))[0]
        try await waitUntil("camera 12 shows its frame", timeout: .seconds(3), every: .milliseconds(50)) {
            try await evaluate(#"(() => { const f = document.querySelector('[data-camera="12"] .frame'); return !!f && !f.hidden && f.dataset.request === '\#(framed)' && f.querySelector('img').naturalWidth === 192 && f.querySelectorAll('rect').length === 1 })()"#) as? Bool == true
        }

        // An alert flashes and joins the alert list.
        let alert = try await h.publish(camera: 7, level: "critical")[0]
        try await waitUntil("the alert is in the alert list", timeout: .seconds(2), every: .milliseconds(20)) {
            try await evaluate("!!document.querySelector('#alert-list li[data-request=\"\(alert)\"]')") as? Bool == true
        }
        try await Task.sleep(for: .milliseconds(300)) // let the flash settle into a representative frame

        let shot = try await call("Page.captureScreenshot", #"{"format":"png"}"#)
        let png = try #require((shot["data"] as? String).flatMap { Data(base64Encoded: $0) })
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG")
        let output = URL(fileURLWithPath: ProcessInfo.processInfo.environment["TEST_OUTPUT_DIR"] ?? ".build/test-output")
        try FileManager.default.createDirectory(at: output, withIntermediateDirectories: true)
        let file = output.appendingPathComponent("dashboard.png")
        try png.write(to: file)
        print("dashboard screenshot: \(file.path) (\(png.count) bytes)")
        // The gateway goes away and comes back: the page reconnects by itself and resumes every
        // camera from its position, so what was published meanwhile shows up.
        await h.gateway.stop()
        try await waitUntil("the page notices the gateway is gone", timeout: .seconds(10)) {
            try await evaluate("document.getElementById('status').dataset.state") as? String != "live"
        }
        let missed = try await h.publish(camera: 3, count: 2, level: "medium")
        var restarted: GatewayService?
        try await waitUntil("a new gateway listens on the same port", timeout: .seconds(10)) {
            restarted = try? GatewayService(configuration: h.gateway.configuration, logger: Logger(label: "test.gateway.2")) // try?: a gateway that cannot start fails the test on the nil
            return restarted != nil
        }
        try await waitUntil("the page is live again", timeout: .seconds(20)) {
            try await evaluate("document.getElementById('status').dataset.state") as? String == "live"
        }
        try await waitUntil("the result published while it was away is shown", timeout: .seconds(5)) {
            try await evaluate(#"document.querySelector('[data-camera="3"]')?.dataset.request"#) as? String == missed[1]
        }
        #expect(try await evaluate("document.getElementById('banner').textContent") as? String == "", "resumed by recovery, with no loss reported")
        let after = try await h.publish(camera: 3, level: "low")[0]
        try await waitUntil("live results flow again", timeout: .seconds(2)) {
            try await evaluate(#"document.querySelector('[data-camera="3"]')?.dataset.request"#) as? String == after
        }
        await restarted?.stop()
        cdp.stop()
        await h.shutdown()
    }
}

import Aggregator
import Foundation
import Testing
import RedisClient
import TestSupport
import TrafficModel

/// Shared frames live exactly as long as some connection still has to send them (issue 13):
/// the `traffic-gateway` process alone, so its frame count and memory are its own.
@Suite struct GatewayFrameLifetimeTests {
    /// The gateway's `gateway_outbound_frames` gauge.
    static func liveFrames(port: Int) async throws -> Int? {
        let text = try await httpGet(port: port, path: "/metrics").text
        let line = text.split(separator: "\n").first { $0.hasPrefix("gateway_outbound_frames ") }
        return line.flatMap { Double($0.split(separator: " ").last ?? "") }.map { Int($0) }
    }

    @Test func framesAreFreedOnceSentAndMemoryStaysFlatOver100000Deliveries() async throws {
        let redisServer = try await RedisServer()
        let port = try FreePort.find()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("gateway") + ".log").path
        let process = try ChildProcess(GatewayProcessTests.binary, ["run", "--port", String(port), "--redis-url", redisServer.url, "--housekeeping-seconds", "1", "--connect-rate", "10000"], output: .appendToFile(log))
        defer { process.terminate(grace: .seconds(2)); redisServer.stop() }
        try await waitUntil("gateway answers /healthz 200", timeout: .seconds(20)) { (try? await httpGet(port: port, path: "/healthz"))?.status == 200 } // try?: not listening yet is "not yet"
        let redis = try await RedisClient.connect(configuration: redisServer.configuration)
        let clients = try WebSocketTestClients(port: port)
        defer { clients.stop() }
        var ids: [UInt64] = []
        for _ in 0..<100 { ids.append(try await clients.open()) }
        for id in ids { clients.send(#"{"type":"subscribe","cameras":[3]}"#, to: id) }
        for id in ids { try await clients.waitFor(id, type: "snapshot", timeout: .seconds(30)) }

        let planner = WritePlanner(keys: KeySchema(), alertRule: AlertRule())
        var sequence = 0
        func publish(_ count: Int) async throws {
            var valid: [AssessmentMessage] = []
            for _ in 0..<count {
                sequence += 1
                let json = #"{"requestId":"leak-\#(sequence)","cameraId":3,"timestamp":"2026-11-29T12:00:00Z","riskAssessment":{"maxRiskLevel":"low","hasDangerousDriving":false}}"#
                valid.append(try AssessmentMessage(validating: Array(json.utf8)))
            }
            _ = try await WriteTransaction().apply(planner.plan(valid, detections: valid.map { _ in nil }), on: redis)
        }
        func received(_ id: UInt64) -> Int { clients.received(id).filter { $0.hasPrefix(#"{"type":"result""#) }.count }
        func waitAll(_ count: Int) async throws {
            try await waitUntil("every client has \(count) results", timeout: .seconds(120)) { ids.allSatisfy { received($0) >= count } }
        }

        // Warm: 10,000 deliveries; then 90,000 more.
        for _ in 0..<2 { try await publish(50) }
        try await waitAll(100)
        try await waitUntil("frames freed after the warm-up", timeout: .seconds(30)) { try await Self.liveFrames(port: port) == 0 }
        let warm = GatewayProcessTests.residentBytes(process.pid)
        for _ in 0..<18 {
            try await publish(50)
            try await Task.sleep(for: .milliseconds(20)) // paced like a live camera, not one burst
        }
        try await waitAll(1_000)
        #expect(ids.allSatisfy { received($0) == 1_000 }, "100 clients × 1,000 results, each once")
        // Every frame was written to all 100 connections and let go.
        try await waitUntil("no frame left in memory", timeout: .seconds(30)) { try await Self.liveFrames(port: port) == 0 }
        let after = GatewayProcessTests.residentBytes(process.pid)
        #expect(after - warm < 8 << 20, "RSS flat: \(warm >> 10) KiB after the warm-up, \(after >> 10) KiB after 100,000 deliveries")
        await redis.close()
    }
}

import Foundation
import Testing
import TestSupport
import TrafficModel
@testable import Gateway

/// Bad client frames, access control, the HTTP API, health and draining.
@Suite struct GatewayProtocolTests {
    @Test func badFramesGetAnErrorAndTheConnectionStaysOpen() async throws {
        let h = try await GatewayHarness()
        let client = try await h.clients.open()
        let cases: [(String, String)] = [
            ("not json", "malformed_json"),
            (#"{"cameras":[1]}"#, "missing_field"),
            (#"{"type":"dance"}"#, "unknown_type"),
            (#"{"type":"subscribe","cameras":"seven"}"#, "invalid_field"),
            (#"{"type":"subscribe","cameras":[-1]}"#, "invalid_field"),
            (#"{"type":"subscribe","cameras":[1],"since":{"1":{"offset":"x"}}}"#, "invalid_field"),
        ]
        for (frame, _) in cases { h.clients.send(frame, to: client) }
        try await waitUntil("one error per bad frame") { h.types(client).filter { $0 == "error" }.count == cases.count }
        let reasons = h.clients.objects(client).filter { $0["type"] as? String == "error" }.compactMap { $0["reason"] as? String }
        #expect(reasons == cases.map(\.1))
        h.clients.send(#"{"type":"ping"}"#, to: client)
        try await h.clients.waitFor(client, type: "pong")
        #expect(h.clients.isOpen(client))
        let metrics = String(decoding: h.gateway.metrics.render(), as: UTF8.self)
        #expect(metrics.contains("gateway_client_errors_total 6"))
        await h.shutdown()
    }

    @Test func aClientFloodingFramesIsRateLimitedAndKeptOpen() async throws {
        let h = try await GatewayHarness { $0.clientMessageRate = 5 }
        let client = try await h.clients.open()
        for _ in 0..<30 { h.clients.send(#"{"type":"ping"}"#, to: client) }
        try await waitUntil("every frame answered or refused") { h.types(client).filter { $0 == "pong" || $0 == "error" }.count == 30 }
        let errors = h.clients.objects(client).filter { $0["type"] as? String == "error" }
        #expect(errors.allSatisfy { $0["reason"] as? String == "rate_limited" })
        #expect(errors.count >= 15, "a burst of 10 passes, the rest of 30 sent at once is refused")
        #expect(h.clients.isOpen(client))
        await h.shutdown()
    }

    @Test func anOversizedFrameClosesWith1009() async throws {
        let h = try await GatewayHarness()
        let client = try await h.clients.open()
        h.clients.send(#"{"type":"ping","pad":""# + String(repeating: "x", count: 70_000) + #""}"#, to: client)
        let close = try await h.clients.waitClosed(client)
        #expect(close.code == 1009)
        await h.shutdown()
    }

    @Test func jwtAcceptedRefusedAndLimitedToItsCameras() async throws {
        let secret = Array("s3cret".utf8)
        let h = try await GatewayHarness { $0.access = AccessPolicy(mode: .jwtHS256(secret: secret), allowedOrigins: ["https://ops.example"]) }
        let exp = Int(Date().timeIntervalSince1970) + 600
        let limited = try JWT.sign(claims: #"{"sub":"t","exp":\#(exp),"cameras":[1,2]}"#, secret: secret)
        let origin = "https://ops.example"

        let ok = try await h.clients.open(path: "/ws?token=\(limited)", origin: origin)
        h.clients.send(#"{"type":"subscribe","cameras":[1,3]}"#, to: ok)
        let error = try await h.clients.waitFor(ok, type: "error")
        #expect(error["reason"] as? String == "forbidden")
        #expect((error["detail"] as? String)?.contains("3") == true)
        let subscribed = try await h.clients.waitFor(ok, type: "subscribed")
        #expect(subscribed["cameras"] as? [Int] == [1])
        h.clients.send(#"{"type":"subscribe","cameras":"*"}"#, to: ok)
        try await h.clients.waitFor(ok, type: "error") { ($0["detail"] as? String)?.contains("every camera") == true }

        let header = try await h.clients.open(path: "/ws", origin: origin, headers: ["Authorization": "Bearer \(limited)"])
        #expect(h.clients.isOpen(header), "the token may come as a bearer header")

        let refusals = [
            h.clients.connect(path: "/ws", origin: origin),                                              // no token
            h.clients.connect(path: "/ws?token=\(limited)x", origin: origin),                            // bad signature
            h.clients.connect(path: "/ws?token=\(try JWT.sign(claims: #"{"exp":1}"#, secret: secret))", origin: origin), // expired
            h.clients.connect(path: "/ws?token=\(try JWT.sign(claims: "{}", secret: Array("other".utf8)))", origin: origin),
            h.clients.connect(path: "/ws?token=\(limited)", origin: "https://evil.example"),            // origin
            h.clients.connect(path: "/ws/cameras/9?token=\(limited)", origin: origin),                   // camera outside the claim
        ]
        try await waitUntil("every bad upgrade refused") { refusals.allSatisfy { h.clients.failure($0) != nil } }
        let api = try await httpGet(port: h.port, path: "/api/cameras/1/latest")
        #expect(api.status == 401, "the API needs the token too")
        let apiOutside = try await httpGet(port: h.port, path: "/api/cameras/5/latest", headers: ["Authorization": "Bearer \(limited)"])
        #expect(apiOutside.status == 403)
        await h.shutdown()
    }

    @Test func staticTokenMode() async throws {
        let h = try await GatewayHarness { $0.access = AccessPolicy(mode: .staticToken("letmein")) }
        let ok = try await h.clients.open(path: "/ws?token=letmein")
        #expect(h.clients.isOpen(ok))
        let bad = h.clients.connect(path: "/ws?token=nope")
        try await waitUntil("wrong token refused") { h.clients.failure(bad) != nil }
        await h.shutdown()
    }

    @Test func httpAPIAnswersAndErrors() async throws {
        let h = try await GatewayHarness()
        try await h.publish(camera: 1, count: 2, level: "high")
        try await h.publish(camera: 2, count: 1)
        let cameras = try await httpGet(port: h.port, path: "/api/cameras")
        #expect(cameras.status == 200)
        let list = try #require(try JSONSerialization.jsonObject(with: Data(cameras.body)) as? [[String: Any]])
        #expect(list.compactMap { $0["camera"] as? Int } == [1, 2])
        #expect(list.first?["maxRiskLevel"] as? String == "high")
        #expect(list.first?["timestamp"] is String)

        let latest = try await httpGet(port: h.port, path: "/api/cameras/1/latest")
        #expect(latest.status == 200 && latest.headers["content-type"] == "application/json")
        #expect(try JSONSerialization.jsonObject(with: Data(latest.body)) is [String: Any])
        let alerts = try await httpGet(port: h.port, path: "/api/cameras/1/alerts?limit=1")
        let alertBody = try #require(try JSONSerialization.jsonObject(with: Data(alerts.body)) as? [String: Any])
        #expect((alertBody["alerts"] as? [Any])?.count == 1)

        for (path, status) in [("/api/cameras/999/latest", 404), ("/api/cameras/999/alerts", 404), ("/api/cameras/abc/latest", 400),
                               ("/api/cameras/1/alerts?limit=0", 400), ("/api/nothing", 404), ("/nope", 404)] {
            let response = try await httpGet(port: h.port, path: path)
            #expect(response.status == status, "\(path)")
            #expect(response.headers["content-type"] == "application/json", "\(path)")
            let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
            #expect(object?["error"] is String, "\(path) answers a JSON error")
        }
        let page = try await httpGet(port: h.port, path: "/")
        #expect(page.status == 200 && page.text.contains("<html"))
        try await h.waitHealthy()
        let health = try await httpGet(port: h.port, path: "/healthz")
        #expect(health.status == 200 && health.text.contains(#""pubsub":true"#))
        let metrics = try await httpGet(port: h.port, path: "/metrics")
        #expect(metrics.text.contains("gateway_connections") && metrics.text.contains("gateway_pubsub_lag_seconds"))
        await h.shutdown()
    }

    @Test func aStampedeOnAColdCameraCostsOneRedisRead() async throws {
        let h = try await GatewayHarness()
        try await h.publish(camera: 31)
        let before = try await mgetCalls(h)
        let responses = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<40 { group.addTask { try await httpGet(port: h.port, path: "/api/cameras/31/latest").status } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(responses.allSatisfy { $0 == 200 })
        let after = try await mgetCalls(h)
        #expect(after - before == 1, "40 concurrent requests, one MGET (single flight, then the cache)")
        await h.shutdown()
    }

    private func mgetCalls(_ h: GatewayHarness) async throws -> Int {
        let info = try await h.redis.send(.info("commandstats"))
        guard let line = info.split(separator: "\r\n").first(where: { $0.hasPrefix("cmdstat_mget:") }) else { return 0 }
        let calls = line.split(separator: ",").first { $0.contains("calls=") }?.split(separator: "=").last
        return calls.flatMap { Int($0) } ?? 0
    }

    @Test func healthFailsWhenPubSubStopsDelivering() async throws {
        let h = try await GatewayHarness()
        try await h.waitHealthy()
        h.redisServer.kill()
        try await waitUntil("health turns 503") { !h.gateway.health.healthy }
        let health = try await httpGet(port: h.port, path: "/healthz")
        #expect(health.status == 503)
        try await h.redisServer.start()
        try await waitUntil("healthy again", timeout: .seconds(20)) { h.gateway.health.healthy }
        await h.shutdown()
    }

    @Test func drainTellsClientsToReconnectAndRefusesNewOnes() async throws {
        let h = try await GatewayHarness()
        let a = try await h.clients.open()
        let b = try await h.clients.open()
        let drain = Task { await h.gateway.drain() }
        for id in [a, b] {
            try await h.clients.waitFor(id, type: "status") { $0["shutdown"] as? Bool == true }
            let close = try await h.clients.waitClosed(id)
            #expect(close.code == 1001)
        }
        #expect(await drain.value == .allClosed, "the drain ends because every client closed, not at its timeout")
        let late = h.clients.connect()
        try await waitUntil("no new connections after drain") { h.clients.failure(late) != nil }
        h.clients.stop()
        await h.redis.close()
        h.redisServer.stop()
    }
}

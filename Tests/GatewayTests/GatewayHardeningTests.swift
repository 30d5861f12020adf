import Foundation
import Testing
import TestSupport
import TrafficModel
import Websockets
import Digest
@testable import Gateway
import Simulation

/// Hostile and oversized traffic at the gateway (issue: hardening): large results, frames over
/// HTTP, header budgets, typed JWT claims, methods and status lines.
@Suite struct GatewayHardeningTests {
    static let upgradeHeaders = ["Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"]

    @Test func aLargeResultReachesEveryWatcherAndDisconnectsNone() async throws {
        let h = try await GatewayHarness()
        let watcher = try await h.clients.open()
        let dashboard = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[1]}"#, to: watcher)
        h.clients.send(#"{"type":"subscribe","cameras":"*"}"#, to: dashboard)
        try await h.clients.waitFor(watcher, type: "subscribed")
        try await h.clients.waitFor(dashboard, type: "subscribed")
        try await h.clients.waitFor(watcher, type: "snapshot")
        try await h.publish(camera: 1, padding: 3 << 20) // one 3 MiB result, three times the send queue
        try await h.publish(camera: 1)
        try await h.waitForResults(watcher, count: 2, timeout: .seconds(20))
        try await h.waitForResults(dashboard, count: 2, timeout: .seconds(20))
        #expect(h.clients.isOpen(watcher) && h.clients.isOpen(dashboard), "one large frame is not a slow client")
        await h.shutdown()
    }

    @Test func allCamerasSnapshotsLargerThanTheQueueArriveInBoundedFrames() async throws {
        let h = try await GatewayHarness()
        // 60 cameras × ~200 KB latest results: 12 MB, past the old 9 MiB refusal point; one
        // camera's latest is larger than a snapshot frame may be.
        for camera in 0..<60 { try await h.publish(camera: camera, padding: 200_000) }
        try await h.publish(camera: 99, padding: 400_000)
        let dashboard = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":"*"}"#, to: dashboard)
        try await waitUntil("the whole snapshot arrived", timeout: .seconds(30)) {
            h.clients.objects(dashboard).filter { $0["type"] as? String == "snapshot" }.flatMap { ($0["cameras"] as? [[String: Any]]) ?? [] }.count >= 61
        }
        #expect(h.clients.isOpen(dashboard))
        let frames = h.clients.received(dashboard).filter { $0.hasPrefix(#"{"type":"snapshot""#) }
        #expect(frames.count > 1)
        #expect(frames.allSatisfy { $0.utf8.count <= ServerMessage.snapshotFrameBytes }, "\(frames.map(\.utf8.count).max() ?? 0)")
        let entries = h.clients.objects(dashboard).filter { $0["type"] as? String == "snapshot" }.flatMap { ($0["cameras"] as? [[String: Any]]) ?? [] }
        let omitted = try #require(entries.first { $0["camera"] as? Int == 99 })
        #expect((omitted["omitted"] as? [String: Any])?["reason"] as? String == "too_large")
        #expect((omitted["omitted"] as? [String: Any])?["url"] as? String == "/api/cameras/99/latest")
        await h.shutdown()
    }

    @Test func framesAreServedOverHTTPWithTheAPIsAccessRules() async throws {
        let secret = Array("frames".utf8)
        let h = try await GatewayHarness { $0.access = AccessPolicy(mode: .jwtHS256(secret: secret)) }
        let image = FramePainter.png(width: 64, height: 36, boxes: [(10, 10, 300, 200)], scale: 10)
        let ids = try await h.publish(camera: 3, frameImage: image)
        let exp = Int(Date().timeIntervalSince1970) + 600
        let mine = ["Authorization": "Bearer " + (try JWT.sign(claims: #"{"exp":\#(exp),"cameras":[3]}"#, secret: secret))]
        let other = ["Authorization": "Bearer " + (try JWT.sign(claims: #"{"exp":\#(exp),"cameras":[4]}"#, secret: secret))]

        let latest = try await httpGet(port: h.port, path: "/api/cameras/3/latest", headers: mine)
        let reference = try #require((try JSONSerialization.jsonObject(with: Data(latest.body)) as? [String: Any])?["frameImageRef"] as? [String: Any])
        let url = try #require(reference["url"] as? String)
        #expect(url == "/api/cameras/3/frames/\(ids[0])")

        let frame = try await httpGet(port: h.port, path: url, headers: mine)
        #expect(frame.status == 200)
        #expect(frame.headers["content-type"] == "image/png")
        #expect(frame.headers["x-content-type-options"] == "nosniff")
        #expect(frame.body == image)
        #expect(try await httpGet(port: h.port, path: url, headers: other).status == 403)
        #expect(try await httpGet(port: h.port, path: url).status == 401)
        #expect(try await httpGet(port: h.port, path: "/api/cameras/3/frames/nope", headers: mine).status == 404)
        #expect(try await httpGet(port: h.port, path: "/api/cameras/3/frames/bad%20id", headers: mine).status == 400)
        await h.shutdown()
    }

    @Test func aTokenForAThousandCamerasWorksAndOversizedRequestsGet431Or414() async throws {
        let secret = Array("big".utf8)
        let h = try await GatewayHarness { $0.access = AccessPolicy(mode: .jwtHS256(secret: secret)) }
        let exp = Int(Date().timeIntervalSince1970) + 600
        let cameras = (0..<1000).map { String(100_000 + $0) }.joined(separator: ",")
        let token = try JWT.sign(claims: #"{"sub":"wall","exp":\#(exp),"cameras":[\#(cameras)]}"#, secret: secret)
        #expect(token.utf8.count > 8_000 && token.utf8.count <= JWT.maximumIssuedBytes, "\(token.utf8.count) bytes")
        #expect(try await httpGet(port: h.port, path: "/api/cameras", headers: ["Authorization": "Bearer \(token)"]).status == 200)
        #expect(try await httpGet(port: h.port, path: "/api/cameras?token=\(token)").status == 200)
        // The upgrade with the token in the request target (lws' own client cannot send one this
        // long, so a raw handshake): the server switches protocols.
        let upgrade = try await httpGet(port: h.port, path: "/ws?token=\(token)", headers: Self.upgradeHeaders, timeout: .seconds(1))
        #expect(upgrade.status == 101, "\(upgrade.statusLine)")

        let longURI = try await httpGet(port: h.port, path: "/api/cameras?pad=" + String(repeating: "u", count: 17_000))
        #expect(longURI.status == 414)
        #expect(longURI.statusLine == "HTTP/1.1 414 URI Too Long")
        let bigHeaders = try await httpGet(port: h.port, path: "/healthz", headers: ["Cookie": String(repeating: "a", count: 11_000), "User-Agent": String(repeating: "b", count: 10_000)])
        #expect(bigHeaders.status == 431)
        #expect(bigHeaders.statusLine == "HTTP/1.1 431 Request Header Fields Too Large")
        await h.shutdown()
    }

    @Test func jwtClaimsAreTyped() throws {
        let secret = Array("typed".utf8)
        let now = Date()
        let exp = Int(now.timeIntervalSince1970) + 600
        func verify(_ claims: String, requireExpiry: Bool = true) throws -> Result<CameraPermission, JWT.Invalid> {
            JWT.verify(try JWT.sign(claims: claims, secret: secret), secret: secret, now: now, requireExpiry: requireExpiry)
        }
        #expect(try verify(#"{"exp":"1","cameras":"*"}"#) == .failure(.init(reason: "JWT claim 'exp' must be a number (seconds since 1970)")))
        #expect(try verify(#"{"exp":\#(exp),"nbf":true,"cameras":"*"}"#) == .failure(.init(reason: "JWT claim 'nbf' must be a number (seconds since 1970)")))
        if case .success = try verify(#"{"cameras":"*"}"#) { Issue.record("a token without exp was accepted") }
        #expect(try verify(#"{"cameras":"*"}"#, requireExpiry: false) == .success(.all))
        #expect(try verify(#"{"exp":\#(exp)}"#) == .success(.only([])), "no cameras claim: no camera")
        #expect(try verify(#"{"exp":\#(exp),"cameras":"all"}"#) == .failure(.init(reason: #"JWT claim 'cameras' must be an array of camera ids or "*""#)))
        #expect(try verify(#"{"exp":\#(exp),"cameras":[7,"8"]}"#) == .success(.only([7, 8])))
    }

    @Test func aTokenWhoseSignatureCannotBeCheckedIsRefusedAsUnavailable() throws {
        let secret = Array("unchecked".utf8)
        let token = try JWT.sign(claims: #"{"exp":\#(Int(Date().timeIntervalSince1970) + 600),"cameras":"*"}"#, secret: secret)
        let failure = DigestError(operation: .hmacSHA256, code: 0, reason: "")
        let result = JWT.verify(token, secret: secret, now: Date(), requireExpiry: true) { _, _ throws(DigestError) in throw failure }
        guard case .failure(let invalid) = result else {
            Issue.record("a token whose signature was never checked was accepted")
            return
        }
        #expect(invalid.unverifiable == failure)
        #expect(AccessPolicy.denial(invalid) == AccessDenied(status: 503, reason: invalid.reason), "unavailable (retry), not unauthorized")
        #expect(AccessPolicy.denial(JWT.Invalid(reason: "JWT expired")).status == 401)
    }

    @Test func aTokenWithoutCamerasWatchesNothing() async throws {
        let secret = Array("none".utf8)
        let h = try await GatewayHarness { $0.access = AccessPolicy(mode: .jwtHS256(secret: secret)) }
        let token = try JWT.sign(claims: #"{"exp":\#(Int(Date().timeIntervalSince1970) + 600)}"#, secret: secret)
        let client = try await h.clients.open(path: "/ws?token=\(token)")
        h.clients.send(#"{"type":"subscribe","cameras":[1]}"#, to: client)
        let error = try await h.clients.waitFor(client, type: "error")
        #expect(error["reason"] as? String == "forbidden")
        let noExp = h.clients.connect(path: "/ws?token=\(try JWT.sign(claims: #"{"cameras":"*"}"#, secret: secret))")
        _ = try await h.clients.waitClosed(noExp)
        #expect(!h.clients.isOpen(noExp))
        await h.shutdown()
    }

    @Test func methodsOtherThanGetAre405AndStatusLinesCarryReasonPhrases() async throws {
        let h = try await GatewayHarness { $0.connectRate = 0.001; $0.connectBurst = 1; $0.access = AccessPolicy(allowedOrigins: ["https://ok.example"]) }
        for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"] {
            let response = try await httpRequest(port: h.port, method: method, path: "/api/cameras", body: method == "POST" ? Array("x=1".utf8) : [])
            #expect(response.status == 405, "\(method)")
            #expect(response.statusLine == "HTTP/1.1 405 Method Not Allowed")
            #expect(response.headers["allow"] == "GET, HEAD", "\(method)")
        }
        let head = try await httpRequest(port: h.port, method: "HEAD", path: "/healthz")
        #expect(head.status == 200 && head.body.isEmpty)

        let origin = "https://evil.example/<script>alert(1)</script>"
        let refused = try await httpGet(port: h.port, path: "/ws", headers: Self.upgradeHeaders.merging(["Origin": origin]) { $1 })
        #expect(refused.status == 403)
        #expect(refused.headers["content-type"] == "application/json", "never an HTML page echoing the origin")
        #expect((try JSONSerialization.jsonObject(with: Data(refused.body)) as? [String: Any])?["error"] as? String == "origin '\(origin)' is not allowed")

        _ = try await h.clients.open(origin: "https://ok.example") // takes the one token of the burst
        let throttled = try await httpGet(port: h.port, path: "/ws", headers: Self.upgradeHeaders.merging(["Origin": "https://ok.example"]) { $1 })
        #expect(throttled.statusLine == "HTTP/1.1 429 Too Many Requests")
        await h.shutdown()
    }
}

/// RFC 6455 on the wire, with a raw client.
@Suite struct GatewayWireTests {
    /// Runs blocking socket work on a thread of its own (never the cooperative pool).
    static func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            Thread { continuation.resume(with: Result { try body() }) }.start()
        }
    }

    @Test func anUnmaskedClientFrameClosesWith1002AndMaskedOnesAreServed() async throws {
        let h = try await GatewayHarness()
        let port = h.port
        let masked = try await Self.blocking { () -> [UInt8]? in
            let socket = try RawWebSocket(port: port)
            try socket.write(RawWebSocket.textFrame(#"{"type":"ping"}"#, masked: true))
            while let frame = try socket.readFrame() {
                if String(decoding: frame.payload, as: UTF8.self).contains("pong") { return frame.payload }
            }
            return nil
        }
        #expect(masked.map { String(decoding: $0, as: UTF8.self) } == #"{"type":"pong"}"#, "a masked frame is answered")
        let code = try await Self.blocking { () -> UInt16? in
            let socket = try RawWebSocket(port: port)
            try socket.write(RawWebSocket.textFrame(#"{"type":"ping"}"#, masked: false))
            return try socket.closeCode()
        }
        #expect(code == 1002)
        // Sent in the same write as the upgrade request, before the 101: still seen.
        let early = try await Self.blocking { () -> UInt16? in
            let socket = try RawWebSocket(port: port, early: RawWebSocket.textFrame(#"{"type":"ping"}"#, masked: false))
            return try socket.closeCode()
        }
        #expect(early == 1002)
        // A control frame lws answers by itself (PING → PONG) is caught too.
        let ping = try await Self.blocking { () -> UInt16? in
            let socket = try RawWebSocket(port: port)
            try socket.write(RawWebSocket.frame(opcode: 0x9, Array("hi".utf8), masked: false))
            return try socket.closeCode()
        }
        #expect(ping == 1002)
        await h.shutdown()
    }
}

import Foundation
import Synchronization
import Testing
import TestSupport
import Websockets

/// An echo server: upgrades on /echo only, answers `{"echo":…}`, counts what it sees.
private final class EchoDelegate: WebServerDelegate, @unchecked Sendable {
    var server: WebServer?
    let events = Mutex<[String]>([])

    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        // Answer later, from another thread, as a service waiting on Redis would.
        DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(20)) {
            responder.respond(.json(#"{"path":\#(JSONText.quoted(request.path)),"limit":\#(JSONText.quoted(request.query["limit"] ?? ""))}"#))
        }
    }

    func shouldAccept(_ request: HTTPRequest) -> UpgradeDecision {
        if request.path != "/echo" { return .reject(status: 404, reason: "no such endpoint") }
        if request.headers["origin"] == "http://evil.example" { return .reject(status: 403, reason: "origin not allowed") }
        return .accept
    }

    func opened(_ connection: WebSocketID, request: HTTPRequest) { events.withLock { $0.append("open \(request.query["who"] ?? "")") } }

    func received(_ connection: WebSocketID, message: [UInt8], isBinary: Bool) {
        let text = String(decoding: message, as: UTF8.self)
        if text == "flood" {
            // 4 MiB of frames at once: more than the queue allows unless the client keeps up.
            let frame = OutboundFrame([UInt8](repeating: UInt8(ascii: "x"), count: 16 * 1024))
            for _ in 0..<256 where server?.send(frame, to: connection) == .queued {}
            return
        }
        server?.send(OutboundFrame(text: #"{"echo":\#(message.count)}"#), to: connection)
    }

    func closed(_ connection: WebSocketID) { events.withLock { $0.append("closed") } }
}

@Suite struct WebServerTests {
    private func start(queueLimit: Int = 1 << 20) throws -> (WebServer, EchoDelegate, Int) {
        let delegate = EchoDelegate()
        for _ in 0..<5 {
            var configuration = WebServerConfiguration(port: try FreePort.find())
            configuration.maximumQueuedBytes = queueLimit
            if let server = try? WebServer(configuration: configuration, delegate: delegate) {
                delegate.server = server
                return (server, delegate, configuration.port)
            }
        }
        throw WebSocketTestError(message: "no free port")
    }

    @Test func theLastReferenceMayGoOnTheServiceThread() async throws {
        // The only reference to the server sits in a box that a closure on the service thread
        // empties: the handle's deinit runs there (it cannot wait for its own thread).
        final class Holder: @unchecked Sendable { var server: WebServer? }
        let holder = Holder()
        let port: Int
        do {
            let made = try start() // scoped: the tuple holds a reference too
            made.1.server = nil // the delegate's reference would keep it alive
            (holder.server, port) = (made.0, made.2)
        }
        let released = Mutex(false)
        holder.server?.execute {
            holder.server = nil
            released.withLock { $0 = true }
        }
        try await waitUntil("the closure released the server", timeout: .seconds(10)) { released.withLock { $0 } }
        try await waitUntil("the server stopped listening", timeout: .seconds(10)) {
            guard let fd = connectLoopback(port: port, receiveTimeoutSeconds: 1) else { return true }
            close(fd)
            return false
        }
    }

    @Test func answersHTTPAsynchronouslyWithQueryArguments() async throws {
        let (server, _, port) = try start()
        let response = try await httpGet(port: port, path: "/api/x?limit=5")
        #expect(response.status == 200)
        #expect(response.text == #"{"path":"/api/x","limit":"5"}"#)
        #expect(response.headers["cache-control"] == "no-store")
        server.stop()
    }

    @Test func echoesMessagesIncludingLargeFragmentedOnes() async throws {
        let (server, delegate, port) = try start()
        let clients = try WebSocketTestClients(port: port)
        let id = try await clients.open(path: "/echo?who=a")
        clients.send("hello", to: id)
        clients.send(String(repeating: "y", count: 60_000), to: id)
        try await waitUntil("two echoes") { clients.received(id).count == 2 }
        #expect(clients.received(id) == [#"{"echo":5}"#, #"{"echo":60000}"#])
        #expect(delegate.events.withLock { $0 } == ["open a"])
        clients.close(id)
        try await waitUntil("server sees the close") { delegate.events.withLock { $0.contains("closed") } }
        clients.stop()
        server.stop()
    }

    @Test func refusesUpgradesTheDelegateRejects() async throws {
        let (server, _, port) = try start()
        let clients = try WebSocketTestClients(port: port)
        let wrongPath = clients.connect(path: "/nope")
        let badOrigin = clients.connect(path: "/echo", origin: "http://evil.example")
        try await waitUntil("both refused") { clients.failure(wrongPath) != nil && clients.failure(badOrigin) != nil }
        #expect(!clients.isOpen(wrongPath) && !clients.isOpen(badOrigin))
        clients.stop()
        server.stop()
    }

    @Test func closesAMessageOverTheInboundLimitWith1009() async throws {
        let (server, _, port) = try start()
        let clients = try WebSocketTestClients(port: port)
        let id = try await clients.open(path: "/echo")
        clients.send(String(repeating: "z", count: 70_000), to: id)
        let close = try await clients.waitClosed(id)
        #expect(close.code == 1009)
        #expect(close.reason.contains("65536"))
        clients.stop()
        server.stop()
    }

    @Test func aClientThatStopsReadingIsClosedWith1008AndOthersAreUnaffected() async throws {
        let (server, delegate, port) = try start(queueLimit: 256 * 1024)
        let clients = try WebSocketTestClients(port: port)
        let slow = try await clients.open(path: "/echo")
        let fast = try await clients.open(path: "/echo")
        try await clients.pauseReading(slow)
        for _ in 0..<8 { clients.send("flood", to: slow) }
        try await waitUntil("the server drops the slow client", timeout: .seconds(20)) { delegate.events.withLock { $0.contains("closed") } }
        try await clients.pauseReading(slow, false)
        let close = try await clients.waitClosed(slow, timeout: .seconds(20))
        // The close frame itself may never be read by a client that does not read; either way
        // the server must have dropped it.
        #expect(close.code == nil || close.code == 1008)
        clients.send("still here", to: fast)
        try await waitUntil("fast client still served") { clients.received(fast).contains(#"{"echo":10}"#) }
        clients.stop()
        server.stop()
    }
}

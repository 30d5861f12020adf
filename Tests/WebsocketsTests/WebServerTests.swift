import Foundation
import Synchronization
import Testing
import TestSupport
import TrafficModel
import Websockets

/// An echo server: upgrades on /echo only, answers `{"echo":…}`, counts what it sees.
private actor EchoDelegate: WebServerDelegate {
    let executor: any SerialExecutor
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }
    /// Weak: the test decides when the server's last reference goes.
    weak var server: WebServer?
    nonisolated let events = Mutex<[String]>([])

    init(server: WebServer) {
        executor = server.executor
        self.server = server
    }

    func forgetServer() { server = nil }

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
            for _ in 0..<256 {
                switch server?.send(frame, to: connection) {
                case .queued?: continue
                case .overLimit?: events.withLock { $0.append("over limit") }
                default: break
                }
                return
            }
            return
        }
        server?.send(OutboundFrame(text: #"{"echo":\#(message.count)}"#), to: connection)
    }

    func closed(_ connection: WebSocketID) { events.withLock { $0.append("closed") } }
}

@Suite struct WebServerTests {
    private func start(queueLimit: Int = 1 << 20) throws -> (WebServer, EchoDelegate, Int) {
        var failures: [String] = []
        for _ in 0..<5 {
            var configuration = WebServerConfiguration(port: try FreePort.find())
            configuration.maximumQueuedBytes = queueLimit
            do {
                let server = try WebServer(configuration: configuration)
                let delegate = EchoDelegate(server: server)
                server.start(delegate: delegate)
                return (server, delegate, configuration.port)
            } catch {
                failures.append("port \(configuration.port): \(error)") // taken meanwhile: try another
            }
        }
        throw WebSocketTestError(message: "no server could start in 5 tries: \(failures.joined(separator: "; "))")
    }

    @Test func theLastReferenceMayGoOnTheServiceThread() async throws {
        // The only reference to the server sits in a box that a closure on the service thread
        // empties: the handle's deinit runs there (it cannot wait for its own thread).
        final class Holder: Sendable { let server = Mutex<WebServer?>(nil) }
        let holder = Holder()
        let port: Int
        do {
            let made = try start() // scoped: the tuple holds a reference too
            holder.server.withLock { $0 = made.0 }
            port = made.2
        }
        let released = Mutex(false)
        holder.server.withLock { server in
            // Asked under the lock, so the closure's release (which takes it) comes after this
            // reference is gone: the last one goes on the service thread.
            _ = server?.execute {
                holder.server.withLock { $0 = nil }
                released.withLock { $0 = true }
            }
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
        // One request: requests the server has not read when it closes make the kernel reset
        // the connection, and a reset discards the close frame waiting in the client's buffer.
        clients.send("flood", to: slow)
        // The server closes the moment the queue is over its limit; the close frame waits (up
        // to 2 s) for the socket to drain, so the client reads again at once and must get it.
        try await waitUntil("the server finds the slow client over its limit", timeout: .seconds(20), every: .milliseconds(2)) { delegate.events.withLock { $0.contains("over limit") } }
        try await clients.pauseReading(slow, false)
        let close = try await clients.waitClosed(slow, timeout: .seconds(20))
        #expect(close.code == 1008, "closed as too slow: \(close)")
        try await waitUntil("the server saw the close") { delegate.events.withLock { $0.contains("closed") } }
        clients.send("still here", to: fast)
        try await waitUntil("fast client still served") { clients.received(fast).contains(#"{"echo":10}"#) }
        clients.stop()
        server.stop()
    }
}

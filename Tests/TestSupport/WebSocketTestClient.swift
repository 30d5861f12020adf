import Foundation
import Synchronization
public import Websockets

/// Many WebSocket clients for tests: records every event per connection and waits on them with
/// deadlines.
public final class WebSocketTestClients: Sendable {
    private struct Record {
        var messages: [WebSocketID: [String]] = [:]
        var opened: Set<WebSocketID> = []
        var closed: [WebSocketID: (code: UInt16?, reason: String)] = [:]
        var failed: [WebSocketID: String] = [:]

        mutating func record(_ event: WebSocketClientEvent) {
            switch event {
            case .opened(let id): opened.insert(id)
            case .message(let id, let bytes): messages[id, default: []].append(String(decoding: bytes, as: UTF8.self))
            case .closed(let id, let code, let reason): closed[id] = (code, reason)
            case .failed(let id, let reason): failed[id] = reason
            }
        }
    }

    private final class Recorder: Sendable {
        let state = Mutex(Record())
    }

    private let recorder = Recorder()
    private let clients: WebSocketClients
    public let port: Int

    public init(port: Int) throws {
        self.port = port
        let recorder = self.recorder
        clients = try WebSocketClients(name: "test-ws") { event in recorder.state.withLock { $0.record(event) } }
    }

    deinit { clients.stop() }

    private func read<T>(_ body: (Record) -> T) -> T { recorder.state.withLock { body($0) } }

    /// Opens a connection without waiting.
    @discardableResult
    public func connect(path: String = "/ws", origin: String? = nil, headers: [String: String] = [:]) -> WebSocketID {
        clients.connect(port: port, path: path, origin: origin, headers: headers)
    }

    /// Opens a connection and waits until it is open (throws when it fails or times out).
    public func open(path: String = "/ws", origin: String? = nil, headers: [String: String] = [:], timeout: Duration = .seconds(10)) async throws -> WebSocketID {
        let id = connect(path: path, origin: origin, headers: headers)
        try await waitUntil("connection \(id) to \(path) opens", timeout: timeout) {
            if let reason = failure(id) { throw WebSocketTestError(message: "connection to \(path) failed: \(reason)") }
            return isOpen(id)
        }
        return id
    }

    public func send(_ text: String, to id: WebSocketID) { clients.send(text, to: id) }
    /// Stops (or resumes) reading on `id`; returns once the socket's flow control is set.
    public func pauseReading(_ id: WebSocketID, _ paused: Bool = true) async throws {
        let applied = Collector<Bool>()
        clients.pauseReading(id, paused) { applied.append(true) }
        try await waitUntil("reading on connection \(id) is \(paused ? "paused" : "resumed")") { applied.count > 0 }
    }
    public func close(_ id: WebSocketID) { clients.close(id) }
    public func stop() { clients.stop() }

    public func isOpen(_ id: WebSocketID) -> Bool { read { $0.opened.contains(id) && $0.closed[id] == nil } }
    public func received(_ id: WebSocketID) -> [String] { read { $0.messages[id] ?? [] } }
    public func closeInfo(_ id: WebSocketID) -> (code: UInt16?, reason: String)? { read { $0.closed[id] } }
    public func failure(_ id: WebSocketID) -> String? { read { $0.failed[id] } }

    /// The received messages decoded as JSON objects.
    public func objects(_ id: WebSocketID) -> [[String: Any]] {
        received(id).compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] } // try?: a message that is not a JSON object is not one of these
    }

    /// Waits until `id` has received a message of `type` matching `predicate`, returns it.
    @discardableResult
    public func waitFor(_ id: WebSocketID, type: String, timeout: Duration = .seconds(10), where predicate: ([String: Any]) -> Bool = { _ in true }) async throws -> [String: Any] {
        var found: [String: Any]?
        try await waitUntil("connection \(id) receives a '\(type)' message", timeout: timeout) {
            found = objects(id).first { $0["type"] as? String == type && predicate($0) }
            return found != nil
        }
        return found!
    }

    /// Waits until `id` has received a message of one of `types`; returns the first such.
    @discardableResult
    public func waitFor(_ id: WebSocketID, timeout: Duration = .seconds(10), anyOf types: Set<String>) async throws -> [String: Any] {
        var found: [String: Any]?
        try await waitUntil("connection \(id) receives one of \(types.sorted())", timeout: timeout) {
            found = objects(id).first { ($0["type"] as? String).map(types.contains) == true }
            return found != nil
        }
        return found!
    }

    /// Waits until `id` is closed by the server; returns its close code and reason.
    public func waitClosed(_ id: WebSocketID, timeout: Duration = .seconds(10)) async throws -> (code: UInt16?, reason: String) {
        try await waitUntil("connection \(id) closes", timeout: timeout) { closeInfo(id) != nil || failure(id) != nil }
        return closeInfo(id) ?? (nil, failure(id) ?? "")
    }
}

/// A test client that could not do what it was asked.
public struct WebSocketTestError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}

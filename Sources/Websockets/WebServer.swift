import CWebsockets
import Foundation
import Synchronization

/// An HTTP and WebSocket server on one libwebsockets context and one port.
///
/// One dedicated thread runs `lws_service`, and is also a Swift executor: the delegate is an
/// actor running there, and the connection methods (`send`, `close`) are called from it. Each
/// connection has its own bounded queue of shared `OutboundFrame`s, written as the socket
/// accepts them.
///
/// This is the owner's handle; the server itself (`WebServerCore`) is kept alive by its thread
/// until the context is destroyed, so the handle's last reference may go anywhere — on the
/// service thread too, where `deinit` only asks the loop to stop.
public final class WebServer: Sendable {
    let core: WebServerCore

    /// Listens (connections wait in the backlog until `start(delegate:)`); throws when the port
    /// cannot be bound.
    public init(configuration: WebServerConfiguration) throws {
        core = try WebServerCore(configuration: configuration)
    }

    deinit { core.stop() }

    public var configuration: WebServerConfiguration { core.configuration }

    /// The executor of the service thread. The delegate actor keeps it (a strong reference:
    /// its tasks may outlive this handle) and returns it as its `unownedExecutor`.
    public var executor: any SerialExecutor { core.loop }

    /// Starts serving with `delegate`, an actor whose `unownedExecutor` is this server's (once).
    public func start(delegate: any WebServerDelegate) { core.start(delegate: delegate) }

    /// Runs `work` on the service thread, for threads that are not Swift tasks (a C library's,
    /// a timer's); a delegate actor wraps it in `assumeIsolated`. Returns false (and drops
    /// `work`) once the server is stopping.
    @discardableResult
    public func execute(_ work: @escaping @Sendable () -> Void) -> Bool { core.loop.execute(work) }

    /// Stops serving: open connections are dropped, the thread ends. From any other thread it
    /// returns once the thread has ended; on the service thread it asks and returns. Jobs of the
    /// delegate actor that arrive later still run (on a private queue), seeing no connections.
    public func stop() { core.stop() }

    /// Queues `frame` for `connection` (see `WebServerCore.send`). From the delegate actor.
    @discardableResult
    public func send(_ frame: OutboundFrame, to connection: WebSocketID, allowance: Int = 0) -> SendOutcome {
        assert(core.loop.isIsolatingCurrentContext() == true, "WebServer.send off the service thread")
        return core.send(frame, to: connection, allowance: allowance)
    }

    /// Closes a connection with a close frame (after its queue when `flush`). From the delegate actor.
    public func close(_ connection: WebSocketID, code: UInt16, reason: String, flush: Bool = false) {
        assert(core.loop.isIsolatingCurrentContext() == true, "WebServer.close off the service thread")
        core.close(connection, code: code, reason: reason, flush: flush)
    }

    /// Asks for one `flushing()` call before the writes of the current callback or drain (the
    /// delegate has something to turn into frames at the last moment). From the delegate actor.
    public func requestFlushCallback() {
        assert(core.loop.isIsolatingCurrentContext() == true, "WebServer.requestFlushCallback off the service thread")
        core.requestFlushCallback()
    }

    /// Open WebSocket connections. From the delegate actor.
    public var connectionCount: Int { core.connectionCount }
}

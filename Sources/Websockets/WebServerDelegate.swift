/// What a `WebServer` asks of its owner: an actor that runs on the server's own thread (its
/// `unownedExecutor` is the server's `executor`), so the lws callbacks call it
/// synchronously and its state is confined to that thread by the compiler. Every method must
/// return quickly without blocking; slow work runs in a task (which comes back to the actor when
/// it awaits) or answers later through the `HTTPResponder`.
public protocol WebServerDelegate: Actor {
    /// An HTTP request; answer through `responder`, now or later, from any thread.
    func handle(_ request: HTTPRequest, responder: HTTPResponder)
    /// A WebSocket upgrade request; the default refuses them all.
    func shouldAccept(_ request: HTTPRequest) -> UpgradeDecision
    /// A WebSocket connection is open.
    func opened(_ connection: WebSocketID, request: HTTPRequest)
    /// A complete inbound message (fragments reassembled).
    func received(_ connection: WebSocketID, message: [UInt8], isBinary: Bool)
    /// A WebSocket connection is gone (closed by either side or dropped).
    func closed(_ connection: WebSocketID)
    /// The server is about to write what was queued in this callback or drain: the last moment
    /// to queue more into the same writes. Called only after `WebServer.requestFlushCallback()`.
    func flushing()
}

extension WebServerDelegate {
    public func shouldAccept(_ request: HTTPRequest) -> UpgradeDecision { .reject(status: 404, reason: "no WebSocket here") }
    public func opened(_ connection: WebSocketID, request: HTTPRequest) {}
    public func received(_ connection: WebSocketID, message: [UInt8], isBinary: Bool) {}
    public func closed(_ connection: WebSocketID) {}
    public func flushing() {}
}

/// The calls an lws callback makes: on the service thread, which is the delegate's executor
/// (`assumeIsolated` checks that at run time; the protocol's isolation checks the rest).
extension WebServerDelegate {
    nonisolated func callHandle(_ request: HTTPRequest, responder: HTTPResponder) { assumeIsolated { $0.handle(request, responder: responder) } }
    nonisolated func callShouldAccept(_ request: HTTPRequest) -> UpgradeDecision { assumeIsolated { $0.shouldAccept(request) } }
    nonisolated func callOpened(_ connection: WebSocketID, request: HTTPRequest) { assumeIsolated { $0.opened(connection, request: request) } }
    nonisolated func callReceived(_ connection: WebSocketID, message: [UInt8], isBinary: Bool) {
        assumeIsolated { $0.received(connection, message: message, isBinary: isBinary) }
    }
    nonisolated func callClosed(_ connection: WebSocketID) { assumeIsolated { $0.closed(connection) } }
    nonisolated func callFlushing() { assumeIsolated { $0.flushing() } }
}

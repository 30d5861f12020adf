import CWebsockets
import Foundation
import Synchronization

/// One libwebsockets context, the dedicated thread that services it, and the Swift executor
/// that runs on that thread.
///
/// The context runs on a libev loop (epoll) through lws' libev plugin; the loop blocks, so it
/// never runs on Swift's cooperative pool. Everything that touches the context or its
/// connections happens on this thread. Work reaches it two ways, both drained in
/// `LWS_CALLBACK_EVENT_WAIT_CANCELLED` (woken with `lws_cancel_service`, the one lws call that
/// is safe from any thread):
/// - as a `SerialExecutor`: an actor whose `unownedExecutor` is this loop (the gateway's core)
///   runs its jobs here, so its state and the lws callbacks share one thread and the compiler
///   checks every access to that state;
/// - `execute(_:)`: the wrapper's own closures (a response finished on another thread).
///
/// After the thread ends, jobs still arriving (an actor's tasks finishing their awaits) run on
/// a private serial queue instead, so no task is ever left suspended; closures are dropped.
///
/// `@unchecked Sendable`: the mutable state sits under one `Mutex`; `eventLoop` is immutable and
/// used only by the thread (and by `deinit` when no thread ever ran).
final class ServiceLoop: SerialExecutor, @unchecked Sendable {
    private enum Work {
        case closure(@Sendable () -> Void)
        case job(UnownedJob)
    }

    private struct State {
        /// The context while it may be woken; nil before start and once it is being destroyed.
        var context: OpaquePointer?
        var running = true
        var mailbox: [Work] = []
        /// Set once the thread has ended (or a loop that never started is stopped): later jobs
        /// run here.
        var afterlife: DispatchQueue?
    }

    /// Context, run flag and mailbox under one lock, so a wake-up can never reach a context
    /// that is being destroyed.
    private let state = Mutex(State())
    private let finished = DispatchSemaphore(value: 0)
    private let started = Mutex(false)
    private let stopOnce = Mutex(false)
    private let threadID = Mutex<pthread_t?>(nil)
    private static let afterlifeKey = DispatchSpecificKey<ObjectIdentifier>()
    /// The libev loop (epoll) the context is created on; owned here.
    let eventLoop: OpaquePointer

    init() {
        eventLoop = traffic_ev_loop_new()
    }

    deinit {
        // A started loop is destroyed by its thread; one never started, here.
        if !started.withLock({ $0 }) { traffic_ev_loop_destroy(eventLoop) }
    }

    /// The context, for calls made on the service thread.
    var context: OpaquePointer? { state.withLock { $0.context } }

    /// Starts servicing `context` on a new thread named `name`. The thread holds `owner` (the
    /// callbacks' target) until the context is destroyed.
    func start(context: OpaquePointer, name: String, owner: any ServiceLoopOwner) {
        let box = UncheckedBox(context)
        state.withLock { state in
            state.context = box.value
            // Jobs enqueued before the start (an actor set up first) run at once.
            if !state.mailbox.isEmpty { lws_cancel_service(box.value) }
        }
        started.withLock { $0 = true }
        let loop = UncheckedBox(eventLoop)
        let thread = Thread { [self] in
            threadID.withLock { $0 = pthread_self() }
            let context = box.value
            // Runs until `drain` sees the stop flag and breaks the loop.
            if state.withLock({ $0.running }) { traffic_ev_run(loop.value) }
            state.withLock { $0.context = nil }
            // The frame guard stops reporting to it and forgets its descriptors; connections
            // still open get their CLOSED callbacks from here.
            traffic_frame_guard_context_stopping(context)
            lws_context_destroy(context)
            traffic_ev_loop_destroy(loop.value)
            owner.serviceEnded()
            retire()
            finished.signal()
            withExtendedLifetime(owner) {} // released only now: callbacks may run until the destroy returns
        }
        thread.name = name
        thread.start()
    }

    /// From now on jobs run on a private serial queue: those still queued first, in order.
    private func retire() {
        let queue = DispatchQueue(label: "service-loop.afterlife")
        queue.setSpecific(key: Self.afterlifeKey, value: ObjectIdentifier(self))
        let jobs = state.withLock { state -> [UnownedJob] in
            state.afterlife = queue
            defer { state.mailbox = [] }
            return state.mailbox.compactMap { if case .job(let job) = $0 { job } else { nil } }
        }
        for job in jobs { runAfterlife(job, on: queue) }
    }

    private func runAfterlife(_ job: UnownedJob, on queue: DispatchQueue) {
        let executor = asUnownedSerialExecutor()
        queue.async { job.runSynchronously(on: executor) }
    }

    /// True on the service thread.
    var isServiceThread: Bool {
        guard let id = threadID.withLock({ $0 }) else { return false }
        return pthread_equal(id, pthread_self()) != 0
    }

    // MARK: SerialExecutor

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let afterlife = state.withLock { state -> DispatchQueue? in
            if let queue = state.afterlife { return queue }
            state.mailbox.append(.job(job))
            if state.mailbox.count == 1, state.running, let context = state.context { lws_cancel_service(context) }
            return nil
        }
        if let afterlife { runAfterlife(job, on: afterlife) }
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Whether the caller runs where this executor's jobs run: the service thread (an lws
    /// callback or a drained job), or the queue that takes over after it ended.
    func isIsolatingCurrentContext() -> Bool? {
        isServiceThread || DispatchQueue.getSpecific(key: Self.afterlifeKey) == ObjectIdentifier(self)
    }

    func checkIsolated() {
        precondition(isIsolatingCurrentContext() == true, "not on the service loop's thread")
    }

    // MARK: Closures

    /// Runs `work` on the service thread (soon, in order of submission). Safe from any thread.
    /// Returns false (and drops `work`) once the loop is stopping.
    @discardableResult
    func execute(_ work: @escaping @Sendable () -> Void) -> Bool {
        state.withLock { state -> Bool in
            guard state.running, let context = state.context else { return false }
            state.mailbox.append(.closure(work))
            if state.mailbox.count == 1 { lws_cancel_service(context) }
            return true
        }
    }

    /// Runs the queued work, including what arrives meanwhile, for at most a few rounds: then
    /// sockets get serviced before the rest (a steady stream of work cannot starve them).
    /// Called on the service thread.
    func drain() {
        let executor = asUnownedSerialExecutor()
        for _ in 0..<4 {
            let batch = state.withLock { state -> [Work] in
                defer { state.mailbox.removeAll(keepingCapacity: true) }
                return state.mailbox
            }
            if batch.isEmpty { break }
            for work in batch {
                switch work {
                case .closure(let body): body()
                case .job(let job): job.runSynchronously(on: executor)
                }
            }
        }
        // (Work left after the last round already woke the loop again when it was queued.)
        if !state.withLock({ $0.running }) { traffic_ev_break(eventLoop) }
    }

    /// Stops the loop. From another thread it waits for the loop's thread to finish; on the
    /// service thread itself it only asks (the loop ends once the current work returns).
    func stop() {
        let first = stopOnce.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        guard started.withLock({ $0 }) else {
            state.withLock { $0.running = false }
            retire()
            return
        }
        state.withLock { state in
            state.running = false
            if let context = state.context { lws_cancel_service(context) }
        }
        if !isServiceThread { finished.wait() }
    }
}

/// The callbacks' target of a `ServiceLoop`, held by its thread until the context is destroyed.
protocol ServiceLoopOwner: AnyObject, Sendable {
    /// On the service thread, after the context is destroyed (no callback follows).
    func serviceEnded()
}

/// Carries a non-Sendable value (a C pointer) into a closure that runs on the one thread
/// allowed to use it. `@unchecked Sendable` is its whole point; it is used only for the
/// context and event loop pointers handed to the service thread.
struct UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// The protocol table (and idle policy) an lws context reads for its whole life; freed when
/// its owner is, after the owner stopped the loop. `@unchecked Sendable`: the pointers are
/// immutable, written once here and only read by lws afterwards.
final class ProtocolTable: @unchecked Sendable {
    let name: UnsafeMutablePointer<CChar>
    let protocols: UnsafeMutablePointer<lws_protocols>
    let policy: UnsafeMutablePointer<lws_retry_bo_t>

    /// lws' per-connection receive buffer (allocated for every open WebSocket, 4 KiB by
    /// default). Clients send small control frames; larger messages arrive in several chunks
    /// and are reassembled by the server, so 1 KiB costs nothing but a few more callbacks.
    static let rxBufferSize = 1024
    /// The most lws sends in one go (its own writes: HTTP responses, the rest of a frame cut
    /// short). Left at 0 it would follow `rxBufferSize`, and a 256 KiB snapshot's rest would
    /// trickle out a kilobyte per loop round. Not allocated per connection.
    static let txPacketSize = 256 * 1024

    init(name: String, callback: LWSCallback, rxBufferSize: Int = ProtocolTable.rxBufferSize) {
        self.name = strdup(name)!
        protocols = .allocate(capacity: 2)
        protocols[0] = lws_protocols(name: UnsafePointer(self.name), callback: callback, per_session_data_size: 0, rx_buffer_size: rxBufferSize, id: 0, user: nil, tx_packet_size: Self.txPacketSize)
        protocols[1] = lws_protocols()
        policy = .allocate(capacity: 1)
        policy.initialize(to: lws_retry_bo_t())
    }

    deinit {
        free(name)
        protocols.deallocate()
        policy.deallocate()
    }
}

/// The C signature of an lws protocol callback.
typealias LWSCallback = @convention(c) (OpaquePointer?, lws_callback_reasons, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?, Int) -> Int32

/// A NUL-terminated C buffer as a Swift string.
func string(fromCBuffer buffer: [CChar]) -> String {
    String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

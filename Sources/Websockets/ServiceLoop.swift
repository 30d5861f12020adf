import CWebsockets
import Foundation
import Synchronization

/// One libwebsockets context and the dedicated thread that services it.
///
/// `lws_service` blocks, so it never runs on Swift's cooperative pool. Everything that touches
/// the context or its connections happens on this thread; other threads hand work over with
/// `execute(_:)`, which queues a closure and wakes the loop with `lws_cancel_service` (the one
/// lws call that is safe from any thread). The queue is drained in
/// `LWS_CALLBACK_EVENT_WAIT_CANCELLED` by whoever owns the protocol callback.
final class ServiceLoop: @unchecked Sendable {
    /// Set once by the owner right after the context was created, before the thread starts.
    private(set) var context: OpaquePointer?
    private let mailbox = Mutex<[@Sendable () -> Void]>([])
    private let running = Mutex(true)
    private let finished = DispatchSemaphore(value: 0)
    private let started = Mutex(false)
    private let stopOnce = Mutex(false)
    private let threadID = Mutex<pthread_t?>(nil)

    init() {}

    /// Starts servicing `context` on a new thread named `name`.
    func start(context: OpaquePointer, name: String) {
        self.context = context
        started.withLock { $0 = true }
        let thread = Thread { [self] in
            threadID.withLock { $0 = pthread_self() }
            while running.withLock({ $0 }) {
                _ = lws_service(self.context, 0)
            }
            // Connections still open get their CLOSED callbacks from here.
            lws_context_destroy(self.context)
            self.context = nil
            drain()
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// True on the service thread.
    var isServiceThread: Bool {
        guard let id = threadID.withLock({ $0 }) else { return false }
        return pthread_equal(id, pthread_self()) != 0
    }

    /// Runs `work` on the service thread (soon, in order of submission). Safe from any thread.
    func execute(_ work: @escaping @Sendable () -> Void) {
        mailbox.withLock { $0.append(work) }
        if let context, running.withLock({ $0 }) { lws_cancel_service(context) }
    }

    /// Runs the queued work; called on the service thread.
    func drain() {
        while true {
            let batch = mailbox.withLock { queue -> [@Sendable () -> Void] in
                defer { queue.removeAll(keepingCapacity: true) }
                return queue
            }
            if batch.isEmpty { return }
            for work in batch { work() }
        }
    }

    /// Stops the loop and waits for the thread to finish (not from the service thread itself).
    func stop() {
        let first = stopOnce.withLock { stopped -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first, started.withLock({ $0 }) else { return }
        precondition(!isServiceThread, "ServiceLoop.stop() must not be called on its own thread")
        running.withLock { $0 = false }
        if let context { lws_cancel_service(context) }
        finished.wait()
    }
}

/// The protocol table (and idle policy) an lws context reads for its whole life; freed when
/// its owner is, after the owner stopped the loop.
final class ProtocolTable: @unchecked Sendable {
    let name: UnsafeMutablePointer<CChar>
    let protocols: UnsafeMutablePointer<lws_protocols>
    let policy: UnsafeMutablePointer<lws_retry_bo_t>

    init(name: String, callback: LWSCallback) {
        self.name = strdup(name)!
        protocols = .allocate(capacity: 2)
        protocols[0] = lws_protocols(name: UnsafePointer(self.name), callback: callback, per_session_data_size: 0, rx_buffer_size: 0, id: 0, user: nil, tx_packet_size: 0)
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

#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// What a child process' threads and its owner share: whether it was reaped and with what
/// status, which of its output pipes are still open, its captured output, and who waits for
/// its end. Every part is behind one lock; a pid is signalled only under that lock and only
/// until the child is reaped, so a signal never reaches a pid the kernel handed on.
final class ChildLife: Sendable {
    let pid: pid_t
    private let state: Mutex<State>

    private struct Waiter {
        let continuation: CheckedContinuation<Int32?, Never>
        let timer: Task<Void, Never>?
    }

    private struct State {
        var reaped = false
        var status: Int32 = -1
        /// Output pipes not yet read to their end.
        var openOutputs: Int
        var captured = ChildProcess.Captured()
        /// Waits that have an id but are not registered yet, registered, or given up before
        /// they were registered (a timeout or cancellation can come first).
        var issued: Set<UInt64> = []
        var waiters: [UInt64: Waiter] = [:]
        var givenUp: Set<UInt64> = []
        var nextID: UInt64 = 0

        /// The end: reaped, and every output read to its end (so every line was delivered).
        var ended: Bool { reaped && openOutputs == 0 }
    }

    init(pid: pid_t, outputs: Int) {
        self.pid = pid
        state = Mutex(State(openOutputs: outputs))
    }

    /// The exit status once the child ended: its exit code, or 128 + the signal that ended it.
    var exitStatus: Int32? { state.withLock { $0.ended ? $0.status : nil } }

    var captured: ChildProcess.Captured { state.withLock { $0.captured } }

    /// Waits registered and not ended yet (for tests).
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Sends `signal` unless the child was reaped already; whether it was sent.
    func signal(_ signal: Int32) -> Bool {
        state.withLock { state in
            guard !state.reaped else { return false }
            return kill(pid, signal) == 0
        }
    }

    /// Blocks until the child has exited, then reaps it. Runs on the child's own thread.
    ///
    /// `waitid(WNOWAIT)` waits without reaping, so the pid stays the child's (a zombie) until
    /// `waitpid` reaps it under the lock that `signal` takes: no signal can go to a reused pid.
    func reap() {
        var info = siginfo_t()
        while waitid(P_PID, id_t(pid), &info, WEXITED | WNOWAIT) < 0, errno == EINTR {}
        // (ECHILD: reaped by someone else, e.g. SIGCHLD ignored: the status is lost, -1.)
        let (waiters, status) = state.withLock { state in
            var raw: Int32 = 0
            var reaped: pid_t
            repeat { reaped = waitpid(pid, &raw, WNOHANG) } while reaped < 0 && errno == EINTR
            state.reaped = true
            if reaped == pid { state.status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f) }
            return (Self.takeWaitersIfEnded(&state), state.status)
        }
        Self.resume(waiters, with: status)
    }

    /// One output pipe was read to its end.
    func outputEnded() {
        let (waiters, status) = state.withLock { state in
            state.openOutputs -= 1
            return (Self.takeWaitersIfEnded(&state), state.status)
        }
        Self.resume(waiters, with: status)
    }

    /// A chunk of captured output.
    func capture(_ bytes: ArraySlice<UInt8>, from stream: ChildProcess.Stream) {
        state.withLock { state in
            switch stream {
            case .stdout: state.captured.stdout += bytes
            case .stderr: state.captured.stderr += bytes
            }
        }
    }

    /// A new wait's id (see `register` and `giveUp`).
    func newWaitID() -> UInt64 {
        state.withLock { state in
            state.nextID += 1
            state.issued.insert(state.nextID)
            return state.nextID
        }
    }

    /// Resumes `continuation` with the exit status at the end, at once when the child ended
    /// already, or with nil once the wait is given up (`timer` is cancelled then).
    func register(_ id: UInt64, _ continuation: CheckedContinuation<Int32?, Never>, timer: Task<Void, Never>?) {
        let now: Int32?? = state.withLock { state in
            state.issued.remove(id)
            if state.givenUp.remove(id) != nil { return .some(nil) }
            if state.ended { return .some(state.status) }
            state.waiters[id] = Waiter(continuation: continuation, timer: timer)
            return .none
        }
        if case .some(let status) = now {
            timer?.cancel()
            continuation.resume(returning: status)
        }
    }

    /// Gives the wait `id` up (timeout, cancellation): its continuation resumes with nil.
    func giveUp(_ id: UInt64) {
        let waiter: Waiter? = state.withLock { state in
            if let waiter = state.waiters.removeValue(forKey: id) { return waiter }
            if state.issued.remove(id) != nil { state.givenUp.insert(id) } // not registered yet
            return nil
        }
        waiter?.timer?.cancel()
        waiter?.continuation.resume(returning: nil)
    }

    private static func takeWaitersIfEnded(_ state: inout State) -> [Waiter] {
        guard state.ended else { return [] }
        defer { state.waiters.removeAll() }
        return Array(state.waiters.values)
    }

    private static func resume(_ waiters: [Waiter], with status: Int32) {
        for waiter in waiters {
            waiter.timer?.cancel()
            waiter.continuation.resume(returning: status)
        }
    }
}

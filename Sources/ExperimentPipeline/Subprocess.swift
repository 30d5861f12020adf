public import Foundation
import Synchronization
import ProcessSpawn
public import Regression
#if canImport(Glibc)
import Glibc
#endif

/// Child processes started with `posix_spawn` and watched with `waitpid` on a thread of their
/// own (Foundation's `Process` waits through a run loop nobody runs here, and blocking calls
/// stay off Swift's cooperative pool).
public enum Subprocess {
    /// A started child whose output (stdout and stderr together) arrives line by line.
    public final class Child: Sendable {
        public let pid: pid_t
        private let exit = DispatchSemaphore(value: 0)
        private let status = LockedValue<Int32?>(nil)

        fileprivate init(pid: pid_t, outputFD: Int32?, onLine: @escaping @Sendable (String) -> Void) {
            self.pid = pid
            let thread = Thread { [exit, status] in
                if let fd = outputFD {
                    var pending: [UInt8] = []
                    var buffer = [UInt8](repeating: 0, count: 4096)
                    while true {
                        let n = read(fd, &buffer, buffer.count)
                        if n < 0 && errno == EINTR { continue }
                        if n <= 0 { break }
                        pending += buffer[0..<n]
                        while let newline = pending.firstIndex(of: 10) {
                            onLine(String(decoding: pending[..<newline], as: UTF8.self))
                            pending.removeSubrange(...newline)
                        }
                    }
                    if !pending.isEmpty { onLine(String(decoding: pending, as: UTF8.self)) }
                    close(fd)
                }
                var raw: Int32 = 0
                var waited: pid_t = -1
                repeat { waited = waitpid(pid, &raw, 0) } while waited < 0 && errno == EINTR
                let code: Int32 = waited != pid ? -1 : (raw & 0x7F) == 0 ? (raw >> 8) & 0xFF : 128 + (raw & 0x7F)
                status.set(code)
                exit.signal()
            }
            thread.name = "child-\(pid)"
            thread.start()
        }

        /// The exit status (128 + signal when killed); nil while running.
        public var exitStatus: Int32? { status.get() }

        /// Waits for the child to end and returns its exit status.
        public func wait() async -> Int32 {
            if let done = exitStatus { return done }
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                let exit = self.exit
                Thread {
                    exit.wait()
                    exit.signal() // stays signalled for later waiters
                    continuation.resume()
                }.start()
            }
            return exitStatus ?? -1
        }

        public func terminate() { kill(pid, SIGTERM) }
    }

    /// Starts `executable` (looked up on PATH) with `arguments`; with `onLine` its output is
    /// captured line by line, otherwise it goes to /dev/null.
    public static func start(_ executable: String, _ arguments: [String], onLine: (@Sendable (String) -> Void)? = nil) throws(ExperimentError) -> Child {
        var pipeFDs: [Int32] = [-1, -1]
        if onLine != nil {
            guard pipe(&pipeFDs) == 0 else { throw ExperimentError(.io, "pipe(): \(String(cString: strerror(errno)))") }
            for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) } // dup2 clears it on the child's own 1 and 2
        }
        let write = pipeFDs[1]
        let spawned = spawnProcess(executable, arguments, searchPath: true) { actions in
            if write >= 0 {
                posix_spawn_file_actions_adddup2(&actions, write, 1)
                posix_spawn_file_actions_adddup2(&actions, write, 2)
            } else {
                posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            }
        }
        if onLine != nil { close(pipeFDs[1]) }
        let pid: pid_t
        switch spawned {
        case .success(let child): pid = child
        case .failure(let error):
            if onLine != nil { close(pipeFDs[0]) }
            throw ExperimentError(.io, error.description)
        }
        return Child(pid: pid, outputFD: onLine != nil ? pipeFDs[0] : nil, onLine: onLine ?? { _ in })
    }
}

/// A value behind a lock, for the few cross-thread hand-overs here.
final class LockedValue<Value: Sendable>: Sendable {
    private let value: Mutex<Value>
    init(_ value: Value) { self.value = Mutex(value) }
    func get() -> Value { value.withLock { $0 } }
    func set(_ new: Value) { value.withLock { $0 = new } }
}

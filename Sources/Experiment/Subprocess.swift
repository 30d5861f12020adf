public import Foundation
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
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var pipeFDs: [Int32] = [-1, -1]
        if onLine != nil {
            // Close-on-exec: other children must not inherit this pipe (dup2 below clears the flag
            // on the child's own 1 and 2). Children are started one at a time (run-all's loop).
            guard pipe(&pipeFDs) == 0 else { throw ExperimentError(.io, "pipe(): \(String(cString: strerror(errno)))") }
            for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 1)
            posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
            posix_spawn_file_actions_addclose(&actions, pipeFDs[0])
            posix_spawn_file_actions_addclose(&actions, pipeFDs[1])
        } else {
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        }
        // Nothing else of this process leaks into the child (its Redis connections, other
        // children's pipes): the child gets 0, 1 and 2 only.
        _ = addCloseFrom?(&actions, 3)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // A clean signal mask and default dispositions (the parent may block or ignore some).
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawnp(&pid, executable, &actions, &attributes, argv, environ)
        if onLine != nil { close(pipeFDs[1]) }
        guard result == 0 else {
            if onLine != nil { close(pipeFDs[0]) }
            throw ExperimentError(.io, "cannot start \(executable): \(String(cString: strerror(result)))")
        }
        return Child(pid: pid, outputFD: onLine != nil ? pipeFDs[0] : nil, onLine: onLine ?? { _ in })
    }
}

/// A value behind a lock, for the few cross-thread hand-overs here.
final class LockedValue<Value: Sendable>: @unchecked Sendable {
    private var value: Value
    private let lock = NSLock()
    init(_ value: Value) { self.value = value }
    func get() -> Value { lock.withLock { value } }
    func set(_ new: Value) { lock.withLock { value = new } }
}

/// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+), which Swift's Glibc module does not
/// export: looked up once; nil where the C library lacks it.
private let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
}()

#if canImport(Glibc)
public import Glibc
#endif

/// Why a child process could not be started, or a wait for it ended without its end.
public struct ChildProcessError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// `posix_spawn` refused (no such file, not executable, out of processes): `cause` says why.
        case cannotStart
        /// A pipe for its input or output could not be made (out of file descriptors): `code`.
        case pipeFailed
        /// It did not end within the time allowed; it still runs.
        case timedOut
        /// The waiting task was cancelled; it may still run.
        case cancelled
    }

    public var kind: Kind
    /// The program, as given.
    public var executable: String
    /// The child's pid, once it was started.
    public var pid: pid_t?
    /// The error number, for `.pipeFailed` (and `.cannotStart`, from `cause`).
    public var code: Int32?
    /// The time allowed, for `.timedOut`.
    public var timeout: Duration?
    /// What `spawnProcess` reported, for `.cannotStart`.
    public var cause: SpawnError?

    public init(kind: Kind, executable: String, pid: pid_t? = nil, code: Int32? = nil, timeout: Duration? = nil, cause: SpawnError? = nil) {
        self.kind = kind
        self.executable = executable
        self.pid = pid
        self.code = code ?? cause?.code
        self.timeout = timeout
        self.cause = cause
    }

    /// What to do about it.
    public var hint: String {
        switch kind {
        case .cannotStart: "check the path (or PATH) and that the file is executable"
        case .pipeFailed: "the process may be out of file descriptors: close some or raise the limit (ulimit -n)"
        case .timedOut: "it is still running: wait longer, or stop it (terminate)"
        case .cancelled: "it is still running unless it was stopped"
        }
    }

    public var description: String {
        let which = executable + (pid.map { " (pid \($0))" } ?? "")
        let what: String
        switch kind {
        case .cannotStart: what = "cannot start \(which): \(code.map { String(cString: strerror($0)) } ?? "unknown error")"
        case .pipeFailed: what = "cannot make a pipe for \(which): \(code.map { String(cString: strerror($0)) } ?? "unknown error")"
        case .timedOut: what = "\(which) did not end within \(timeout.map { "\($0)" } ?? "the time allowed")"
        case .cancelled: what = "waiting for \(which) was cancelled"
        }
        return "\(what) — \(hint)"
    }
}

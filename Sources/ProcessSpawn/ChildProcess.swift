#if canImport(Glibc)
public import Glibc
#endif
import OwnThread

/// A child process: started with `spawnProcess` (clean signal state, only descriptors 0–2),
/// its output read line by line or captured, waited for and reaped without polling, and
/// stopped by its own pid.
///
/// One thread of its own blocks in `waitid` until the child exits and reaps it; any number of
/// tasks `wait()` for that, suspended (never blocking a thread of Swift's cooperative pool).
/// Output pipes are read on threads of their own, input is written on one. The child has
/// *ended* once it was reaped and every output pipe was read to its end, so every line has
/// been delivered by then (a grandchild that holds the pipe open delays that).
///
/// `signal` and `terminate` reach the child only until it is reaped, so never a pid the kernel
/// gave to another process since. A child dropped while it runs is killed (SIGKILL) and
/// reaped by its thread.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    /// The program, as given.
    public let executable: String
    private let life: ChildLife

    /// Starts `executable` with `arguments` (looked up on PATH when `searchPath`; `environment`
    /// replaces this process' when given). By default stdin is `/dev/null` and stdout and
    /// stderr go to `/dev/null`.
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, searchPath: Bool = false,
                input: Input = .null, output: Output = .discard, errors: ErrorOutput = .merged) throws(ChildProcessError) {
        self.executable = executable
        var plan = Plan(executable: executable)
        try plan.input(input)
        try plan.output(output, to: 1, stream: .stdout)
        switch errors {
        case .merged: plan.actions.append(.dup(1, 2))
        case .separate(let target): try plan.output(target, to: 2, stream: .stderr)
        }
        let actions = plan.actions
        let spawned = spawnProcess(executable, arguments, environment: environment, searchPath: searchPath) { fileActions in
            for action in actions {
                switch action {
                case .open(let fd, let path, let flags):
                    posix_spawn_file_actions_addopen(&fileActions, fd, path, flags, 0o644)
                case .dup(let from, let to):
                    posix_spawn_file_actions_adddup2(&fileActions, from, to)
                }
            }
        }
        for fd in plan.childEnds { close(fd) } // the child's now (or nobody's)
        switch spawned {
        case .success(let child):
            pid = child
        case .failure(let error):
            plan.closeOurEnds()
            throw ChildProcessError(kind: .cannotStart, executable: executable, cause: error)
        }
        let life = ChildLife(pid: pid, outputs: plan.readers.count)
        self.life = life
        startOwnThread { life.reap() }
        for reader in plan.readers {
            switch reader.sink {
            case .lines(let handler):
                startOwnThread {
                    var splitter = LineSplitter()
                    readToEnd(reader.fd) { chunk in splitter.lines(adding: chunk).forEach(handler) }
                    if let last = splitter.finish() { handler(last) }
                    life.outputEnded()
                }
            case .capture(let stream):
                startOwnThread {
                    readToEnd(reader.fd) { life.capture($0, from: stream) }
                    life.outputEnded()
                }
            }
        }
        if let (bytes, fd) = plan.writer {
            startOwnThread { writeAll(bytes, to: fd) }
        }
    }

    /// A child dropped while it runs is killed; its thread reaps it.
    deinit {
        _ = life.signal(SIGKILL)
    }

    /// The exit status once the child ended: its exit code, or 128 + the number of the signal
    /// that ended it (-1 if someone else reaped it). Nil while it runs.
    public var exitStatus: Int32? { life.exitStatus }

    /// True until the child has ended (see the type's description).
    public var isRunning: Bool { life.exitStatus == nil }

    /// What the streams sent to `.capture` wrote: all of it once `wait()` returned.
    public var captured: Captured { life.captured }

    /// How many waits are suspended now (for tests).
    var waiting: Int { life.waiting }

    /// Sends `signal` (SIGTERM, SIGKILL, SIGSTOP, …) unless the child was reaped already;
    /// whether it was sent.
    @discardableResult
    public func signal(_ signal: Int32) -> Bool {
        life.signal(signal)
    }

    /// SIGTERM now, SIGKILL if the child has not ended within `grace`. Returns at once;
    /// `wait()` awaits the end.
    public func terminate(grace: Duration = .seconds(5)) {
        guard signal(SIGTERM) else { return }
        Task { [self] in
            do {
                _ = try await wait(timeout: grace)
            } catch {
                signal(SIGKILL)
            }
        }
    }

    /// Waits for the end and returns the exit status (see `exitStatus`). Waits on even when the
    /// task is cancelled: `wait(timeout:)` is the bounded wait.
    public func wait() async -> Int32 {
        let life = self.life
        let id = life.newWaitID()
        let status = await withCheckedContinuation { life.register(id, $0, timer: nil) }
        return status ?? -1 // (nil only for a wait given up, and nothing gives this one up)
    }

    /// Waits for the end at most `timeout`; throws `.timedOut` then (the child still runs), or
    /// `.cancelled` when the task is cancelled. No polling: a timer gives the wait up.
    public func wait(timeout: Duration) async throws(ChildProcessError) -> Int32 {
        let life = self.life
        let id = life.newWaitID()
        let status: Int32? = await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let timer = Task {
                    do { try await Task.sleep(for: timeout) } catch { return } // cancelled: the wait ended first
                    life.giveUp(id)
                }
                life.register(id, continuation, timer: timer)
            }
        } onCancel: {
            life.giveUp(id)
        }
        if let status { return status }
        throw ChildProcessError(kind: Task.isCancelled ? .cancelled : .timedOut, executable: executable, pid: pid, timeout: timeout)
    }
}

extension ChildProcess {
    /// The descriptors and file actions a start needs, made before the spawn; closed again
    /// when something fails on the way.
    private struct Plan {
        enum Action { case open(Int32, String, Int32), dup(Int32, Int32) }
        enum Sink { case lines(@Sendable (String) -> Void), capture(Stream) }
        struct Reader { let fd: Int32; let sink: Sink }

        let executable: String
        var actions: [Action] = []
        /// Pipe ends that go to the child (closed here once it started).
        var childEnds: [Int32] = []
        var readers: [Reader] = []
        var writer: ([UInt8], Int32)?

        mutating func input(_ input: Input) throws(ChildProcessError) {
            switch input {
            case .null: actions.append(.open(0, "/dev/null", O_RDONLY))
            case .inherit: break
            case .bytes(let bytes):
                let pipe = try makePipe()
                childEnds.append(pipe.read)
                actions.append(.dup(pipe.read, 0))
                writer = (bytes, pipe.write)
            }
        }

        mutating func output(_ output: Output, to fd: Int32, stream: Stream) throws(ChildProcessError) {
            switch output {
            case .discard: actions.append(.open(fd, "/dev/null", O_WRONLY))
            case .inherit: break
            case .appendToFile(let path): actions.append(.open(fd, path, O_WRONLY | O_CREAT | O_APPEND))
            case .lines(let handler): try piped(to: fd, .lines(handler))
            case .capture: try piped(to: fd, .capture(stream))
            }
        }

        private mutating func piped(to fd: Int32, _ sink: Sink) throws(ChildProcessError) {
            let pipe = try makePipe()
            childEnds.append(pipe.write)
            actions.append(.dup(pipe.write, fd))
            readers.append(Reader(fd: pipe.read, sink: sink))
        }

        private mutating func makePipe() throws(ChildProcessError) -> StreamPipe {
            let made = StreamPipe.make()
            if let pipe = made.pipe { return pipe }
            for fd in childEnds { close(fd) }
            closeOurEnds()
            throw ChildProcessError(kind: .pipeFailed, executable: executable, code: made.errorNumber)
        }

        func closeOurEnds() {
            for reader in readers { close(reader.fd) }
            if let (_, fd) = writer { close(fd) }
        }
    }
}

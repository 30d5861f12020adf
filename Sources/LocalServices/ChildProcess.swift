public import Foundation
import ProcessSpawn
import OwnThread
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A child process started with `posix_spawn`, an empty signal mask and default handlers.
///
/// Foundation's `Process` spawns from a dispatch thread whose signals are blocked, and the
/// child inherits that mask: such a redis-server or service would ignore SIGTERM. Tests that
/// stop processes by signal use this type instead.
public final class ChildProcess: Sendable {
    public let pid: pid_t
    public let executable: String
    /// The wait status once reaped (reaping happens under this lock, once).
    private let exitStatus = Mutex<Int32?>(nil)

    /// Starts `executable`; stdout and stderr go to `outputPath` (appended), or /dev/null.
    public init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, outputPath: String? = nil) throws {
        self.executable = executable
        let output = outputPath ?? "/dev/null"
        switch spawnProcess(executable, arguments, environment: environment, redirect: { actions in
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }) {
        case .success(let child): pid = child
        case .failure(let error): throw LocalServiceError("posix_spawn \(executable): \(String(cString: strerror(error.code)))")
        }
    }

    deinit {
        if isRunning {
            Glibc.kill(pid, SIGKILL)
            let pid = self.pid
            startOwnThread { var status: Int32 = 0; _ = waitpid(pid, &status, 0) } // reaped, no thread of the pool blocked
        }
    }

    /// Sends a signal (SIGTERM, SIGKILL, SIGSTOP, …).
    public func signal(_ signal: Int32) {
        Glibc.kill(pid, signal)
    }

    /// True until the process has exited (reaps it when it has).
    public var isRunning: Bool {
        exitStatus.withLock { exitStatus in
            if exitStatus != nil { return false }
            var status: Int32 = 0
            let result = waitpid(pid, &status, WNOHANG)
            if result == pid {
                exitStatus = status
                return false
            }
            return result == 0
        }
    }

    /// The exit code (or 128 + signal) once the process has exited.
    public var terminationStatus: Int32? {
        _ = isRunning
        return exitStatus.withLock { exitStatus in
            guard let status = exitStatus else { return nil }
            let signal = status & 0x7f
            return signal == 0 ? (status >> 8) & 0xff : 128 + signal
        }
    }

    /// Waits (polling, with a deadline) until the process has exited; returns its status.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(10)) async throws -> Int32 {
        try await waitUntil("\(executable) (pid \(pid)) exits", timeout: timeout, every: .milliseconds(5)) { !self.isRunning }
        return terminationStatus ?? -1
    }

    private func waitForExitBlocking(timeout: Duration) throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while isRunning {
            if ContinuousClock.now > deadline { throw LocalServiceError("\(executable) did not exit") }
            usleep(2_000)
        }
        return terminationStatus ?? -1
    }

    /// SIGTERM, then SIGKILL if it has not exited within `grace`. Returns at once: the waiting
    /// happens on a thread of its own (never on Swift's cooperative pool, which a test body
    /// runs on); `waitForExit` awaits the end.
    public func terminate(grace: Duration = .seconds(5)) {
        guard isRunning else { return }
        signal(SIGTERM)
        startOwnThread { [self] in
            if (try? waitForExitBlocking(timeout: grace)) == nil {
                signal(SIGKILL)
                _ = try? waitForExitBlocking(timeout: .seconds(5))
            }
        }
    }
}

import Foundation
import OwnThread
import ProcessSpawn
#if canImport(Glibc)
import Glibc
#endif

/// Runs a command line tool to completion and returns its exit status and output.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `executable` with `arguments`, feeding `input` on stdin; fails if it does not finish in
/// time (the process is killed then). Started like every child process here
/// (`spawnProcess`: clean signal state, only descriptors 0–2); its output is read on threads of
/// their own, both pipes at once, so a full pipe cannot stall it.
public func runCommand(_ executable: String, _ arguments: [String], input: String? = nil, timeout: Duration = .seconds(30)) async throws -> CommandResult {
    var stdinPipe: [Int32] = [-1, -1], stdoutPipe: [Int32] = [-1, -1], stderrPipe: [Int32] = [-1, -1]
    guard pipe(&stdinPipe) == 0, pipe(&stdoutPipe) == 0, pipe(&stderrPipe) == 0 else {
        for fd in stdinPipe + stdoutPipe + stderrPipe where fd >= 0 { close(fd) }
        throw LocalServiceError("pipe(2) failed: \(String(cString: strerror(errno)))")
    }
    let spawned = spawnProcess(executable, arguments) { actions in
        posix_spawn_file_actions_adddup2(&actions, stdinPipe[0], 0)
        posix_spawn_file_actions_adddup2(&actions, stdoutPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, stderrPipe[1], 2)
    }
    // The child's ends are the child's now.
    for fd in [stdinPipe[0], stdoutPipe[1], stderrPipe[1]] { close(fd) }
    let pid: pid_t
    switch spawned {
    case .success(let child):
        pid = child
    case .failure(let error):
        for fd in [stdinPipe[1], stdoutPipe[0], stderrPipe[0]] { close(fd) }
        throw LocalServiceError("posix_spawn \(executable): \(String(cString: strerror(error.code)))")
    }
    let (writeEnd, outEnd, errEnd) = (stdinPipe[1], stdoutPipe[0], stderrPipe[0])
    let bytes = Array((input ?? "").utf8)
    startOwnThread {
        // A child that exits without reading all of stdin must not SIGPIPE this process: on
        // this thread the signal is blocked, so the write fails with EPIPE instead.
        var pipeSignal = sigset_t()
        sigemptyset(&pipeSignal)
        sigaddset(&pipeSignal, SIGPIPE)
        pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { write(writeEnd, $0.baseAddress, $0.count) }
            if n <= 0 { break } // the child closed stdin
            sent += n
        }
        close(writeEnd)
    }
    async let output = onOwnThread { readToEnd(outEnd) }
    async let errors = onOwnThread { readToEnd(errEnd) }
    let status = try await waitForExit(pid, executable, timeout: timeout)
    let (out, err) = await (output, errors)
    return CommandResult(status: status, stdout: String(decoding: out, as: UTF8.self), stderr: String(decoding: err, as: UTF8.self))
}

/// Reads a descriptor to its end, then closes it.
private func readToEnd(_ fd: Int32) -> [UInt8] {
    defer { close(fd) }
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n > 0 { data += buffer[..<n]; continue }
        if n < 0, errno == EINTR { continue }
        return data
    }
}

/// Waits (polling, with a deadline) for `pid` to exit and reaps it: its exit code, or 128 +
/// the signal that ended it. Past the deadline the process is killed and reaped.
private func waitForExit(_ pid: pid_t, _ executable: String, timeout: Duration) async throws -> Int32 {
    var status: Int32 = 0
    do {
        try await waitUntil("\(executable) exits", timeout: timeout, every: .milliseconds(5)) { waitpid(pid, &status, WNOHANG) == pid }
    } catch {
        kill(pid, SIGKILL)
        startOwnThread { var status: Int32 = 0; _ = waitpid(pid, &status, 0) }
        throw error
    }
    let signal = status & 0x7f
    return signal == 0 ? (status >> 8) & 0xff : 128 + signal
}

/// The path of an installed tool, or nil.
public func which(_ tool: String) -> String? {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = "\(dir)/\(tool)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

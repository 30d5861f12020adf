import Foundation
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
/// time (the process is killed then). A `ChildProcess` like every other: `input` is written on
/// a thread of its own (SIGPIPE blocked there), stdout and stderr are read at once on threads
/// of their own, so a full pipe cannot stall it.
public func runCommand(_ executable: String, _ arguments: [String], input: String? = nil, timeout: Duration = .seconds(30)) async throws -> CommandResult {
    let child = try ChildProcess(executable, arguments, input: input.map { .bytes(Array($0.utf8)) } ?? .null,
                                 output: .capture, errors: .separate(.capture))
    let status: Int32
    do {
        status = try await child.wait(timeout: timeout)
    } catch {
        child.signal(SIGKILL) // its thread reaps it
        throw error
    }
    let output = child.captured
    return CommandResult(status: status, stdout: String(decoding: output.stdout, as: UTF8.self), stderr: String(decoding: output.stderr, as: UTF8.self))
}

/// The path of an installed tool, or nil.
public func which(_ tool: String) -> String? {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = "\(dir)/\(tool)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

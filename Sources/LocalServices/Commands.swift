import Foundation

/// Runs a command line tool to completion and returns its exit status and output.
public struct CommandResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

/// Runs `executable` with `arguments`, feeding `input` on stdin; fails if it does not finish in time.
public func runCommand(_ executable: String, _ arguments: [String], input: String? = nil, timeout: Duration = .seconds(30)) async throws -> CommandResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    let inPipe = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = inPipe
    try process.run()
    if let input {
        inPipe.fileHandleForWriting.write(Data(input.utf8))
    }
    try inPipe.fileHandleForWriting.close()
    // Read both pipes on dispatch threads (blocking reads must not occupy the cooperative pool)
    // and concurrently, so a full pipe cannot stall the child.
    async let stdoutData = readToEnd(out.fileHandleForReading)
    async let stderrData = readToEnd(err.fileHandleForReading)
    try await waitUntil("\(executable) exits", timeout: timeout, every: .milliseconds(20)) { !process.isRunning }
    let (o, e) = await (stdoutData, stderrData)
    return CommandResult(status: process.terminationStatus, stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
}

private func readToEnd(_ handle: FileHandle) async -> Data {
    await withCheckedContinuation { continuation in
        Thread { continuation.resume(returning: handle.readDataToEndOfFile()) }.start()
    }
}

/// The path of an installed tool, or nil.
public func which(_ tool: String) -> String? {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = "\(dir)/\(tool)"
        if FileManager.default.isExecutableFile(atPath: path) { return path }
    }
    return nil
}

@_exported public import ProcessSpawn

/// `ProcessSpawn.ChildProcess` is the one child-process type; users of LocalServices (tests,
/// benchmarks) get it with this module. These are the spellings the test suites were written
/// with, kept so they need not change at once: new code uses `output: .appendToFile(path)`,
/// `exitStatus` and `wait(timeout:)`.
extension ChildProcess {
    /// Starts `executable`; stdout and stderr go to `outputPath` (appended), or /dev/null.
    public convenience init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, outputPath: String?) throws(ChildProcessError) {
        try self.init(executable, arguments, environment: environment, output: outputPath.map { .appendToFile($0) } ?? .discard)
    }

    /// The exit code (or 128 + signal) once the process has ended: `exitStatus`.
    public var terminationStatus: Int32? { exitStatus }

    /// Waits until the process has ended, at most `timeout`: `wait(timeout:)`.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(10)) async throws(ChildProcessError) -> Int32 {
        try await wait(timeout: timeout)
    }
}

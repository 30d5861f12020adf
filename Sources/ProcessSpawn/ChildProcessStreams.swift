#if canImport(Glibc)
import Glibc
#endif

extension ChildProcess {
    /// Where the child's standard input comes from.
    public enum Input: Sendable {
        /// `/dev/null`: reading gives end-of-file at once.
        case null
        /// This process' own standard input.
        case inherit
        /// These bytes, through a pipe written on a thread of its own (SIGPIPE blocked there:
        /// a child that stops reading ends the writing, not this process); then end-of-file.
        case bytes([UInt8])
    }

    /// Where one of the child's output streams goes.
    public enum Output: Sendable {
        /// `/dev/null`.
        case discard
        /// This process' own descriptor (its stdout for `output:`, stderr for `.separate`).
        case inherit
        /// Appended to the file at this path (created, mode 0644, when missing).
        case appendToFile(String)
        /// Through a pipe, line by line (without the newline; a last line without one comes at
        /// the end), to the handler, called on the reading thread in order.
        case lines(@Sendable (String) -> Void)
        /// Through a pipe, kept whole: `captured` once the child ended.
        case capture
    }

    /// Where the child's standard error goes.
    public enum ErrorOutput: Sendable {
        /// Wherever standard output goes, interleaved as written (one pipe for both).
        case merged
        /// Its own way.
        case separate(Output)
    }

    /// The output of streams sent to `.capture`.
    public struct Captured: Sendable, Equatable {
        public var stdout: [UInt8] = []
        public var stderr: [UInt8] = []
    }

    /// Which stream a reading thread serves.
    enum Stream: Sendable { case stdout, stderr }
}

/// A pipe for one of the child's standard streams: the child's end goes to its 0, 1 or 2, the
/// other stays here. Both are close-on-exec (other children must not hold them).
struct StreamPipe {
    let read: Int32
    let write: Int32

    /// A new pipe, or the error number `pipe(2)` gave.
    static func make() -> (pipe: StreamPipe?, errorNumber: Int32) {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { return (nil, errno) }
        for fd in fds { _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC) }
        return (StreamPipe(read: fds[0], write: fds[1]), 0)
    }
}

/// Splits bytes into lines at `\n`, keeping an unfinished last line until more comes or `finish`.
struct LineSplitter {
    private var pending: [UInt8] = []

    /// The complete lines in `pending` + `bytes`, without their newlines.
    mutating func lines(adding bytes: ArraySlice<UInt8>) -> [String] {
        pending += bytes
        var lines: [String] = []
        var start = pending.startIndex
        while let newline = pending[start...].firstIndex(of: 10) {
            lines.append(String(decoding: pending[start..<newline], as: UTF8.self))
            start = newline + 1
        }
        pending.removeSubrange(..<start)
        return lines
    }

    /// The last line, when the stream did not end with a newline.
    mutating func finish() -> String? {
        defer { pending.removeAll() }
        return pending.isEmpty ? nil : String(decoding: pending, as: UTF8.self)
    }
}

/// Reads `fd` to its end (then closes it), handing each chunk to `body`.
func readToEnd(_ fd: Int32, _ body: (ArraySlice<UInt8>) -> Void) {
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 65_536)
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n > 0 { body(buffer[..<n]); continue }
        if n < 0, errno == EINTR { continue }
        return
    }
}

/// Writes all of `bytes` to `fd` (then closes it); stops early when the reader went away.
/// SIGPIPE is blocked on the calling thread first, so that ends in EPIPE, not in this process'
/// death. Run on a thread of its own.
func writeAll(_ bytes: [UInt8], to fd: Int32) {
    defer { close(fd) }
    var pipeSignal = sigset_t()
    sigemptyset(&pipeSignal)
    sigaddset(&pipeSignal, SIGPIPE)
    pthread_sigmask(SIG_BLOCK, &pipeSignal, nil)
    var sent = 0
    while sent < bytes.count {
        let n = bytes[sent...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if n < 0, errno == EINTR { continue }
        if n <= 0 { return } // the child closed its stdin (EPIPE) or will not read it
        sent += n
    }
}

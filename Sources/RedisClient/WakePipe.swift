#if canImport(Glibc)
import Glibc
#endif

/// The pipe that wakes a subscriber's thread from `poll(2)`: both ends non-blocking and
/// close-on-exec (a child process must not hold them).
struct WakePipe: Sendable {
    let read: Int32
    let write: Int32

    /// Makes one, or says why not: out of descriptors (`EMFILE`, `ENFILE`) is
    /// `.resourceUnavailable`, which passes once descriptors are free again.
    static func make() -> Result<WakePipe, RedisError> {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else {
            let code = errno
            return .failure(RedisError(kind: .resourceUnavailable, message: "cannot make the subscriber's wake-up pipe: pipe(2): \(String(cString: strerror(code))) (errno \(code))"))
        }
        for fd in fds {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC)
        }
        return .success(WakePipe(read: fds[0], write: fds[1]))
    }

    func close() {
        _ = Glibc.close(read)
        _ = Glibc.close(write)
    }
}

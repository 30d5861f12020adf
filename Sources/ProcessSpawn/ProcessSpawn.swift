#if canImport(Glibc)
public import Glibc
#endif
import Synchronization

/// Starts a child with `posix_spawn`: an empty signal mask and default dispositions (a parent
/// that blocks or ignores a signal must not hand that on: a redis-server or worker would then
/// ignore SIGTERM), and nothing of the parent but stdin, stdout and stderr (a socket or pipe it
/// inherited would stay open there: a client's connection outliving its close, a port kept
/// bound). `redirect` sets up the child's 0–2 (open, dup2, close); descriptors from 3 on are
/// closed after it. `searchPath` looks `executable` up on PATH. Returns the pid, or the error
/// number `posix_spawn` gave.
public func spawnProcess(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, searchPath: Bool = false,
                         redirect: (inout posix_spawn_file_actions_t) -> Void) -> Result<pid_t, SpawnError> {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    redirect(&actions)
    _ = addCloseFrom?(&actions, 3)

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var empty = sigset_t()
    sigemptyset(&empty)
    posix_spawnattr_setsigmask(&attributes, &empty)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    let argv = ([executable] + arguments).map { strdup($0) } + [nil]
    let envp = environment.map { $0.map { strdup("\($0.key)=\($0.value)") } + [nil] }
    defer {
        argv.forEach { free($0) }
        envp?.forEach { free($0) }
    }
    var pid: pid_t = 0
    func start(_ envp: UnsafePointer<UnsafeMutablePointer<CChar>?>) -> Int32 {
        searchPath ? posix_spawnp(&pid, executable, &actions, &attributes, argv, envp) : posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    }
    let status = SpawnGate.lock.withLock { _ in
        envp.map { array in array.withUnsafeBufferPointer { start($0.baseAddress!) } } ?? start(environ)
    }
    return status == 0 ? .success(pid) : .failure(SpawnError(code: status, executable: executable))
}

/// While `posix_spawn` starts a child, the child holds a copy of every descriptor of this
/// process until it has closed them (closefrom) and exec'd: a socket closed here meanwhile stays
/// open there, listening port and all. Code that closes a socket and needs its port free at once
/// runs `withoutSpawning`: it waits for the spawns under way and holds new ones back. (The case:
/// librdkafka's mock broker taken down closes its listener and binds the same port again at once,
/// and aborts the process when that fails.) Spawns through `spawnProcess` take turns with each
/// other as well; each holds the gate only until `posix_spawn` returns. Only children started
/// through `spawnProcess` are covered, and `body` must neither start one nor enter the gate
/// again (the lock is not reentrant).
public enum SpawnGate {
    static let lock = Mutex(())

    /// Runs `body` while no child is being started.
    public static func withoutSpawning<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try lock.withLock { _ throws(E) in try body() }
    }
}

/// Why a child could not be started: the error number and the executable.
public struct SpawnError: Error, Sendable, CustomStringConvertible {
    public var code: Int32
    public var executable: String
    public var description: String { "cannot start \(executable): \(String(cString: strerror(code)))" }
}

/// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34+), which Swift's Glibc module does not
/// export: looked up once; nil where the C library lacks it.
private let addCloseFrom: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32)? = {
    guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np") else { return nil }
    return unsafeBitCast(symbol, to: (@convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32).self)
}()

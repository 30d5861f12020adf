import ProcessSpawn
import Foundation
import ServiceCLI
import ServiceLifecycle
import Synchronization

/// Worker processes started by `run-all`: each one's output lines are shown as they come, its
/// last lines kept to explain a failure.
final class WorkerGroup: Sendable {
    private struct Member: Sendable {
        var algorithm: String
        var child: ChildProcess
    }

    private let members = Mutex<[Member]>([])
    private let tails = Mutex<[String: [String]]>([:])

    func start(_ algorithm: String, executable: String, arguments: [String]) throws {
        let child = try ChildProcess(executable, arguments, input: .inherit, output: .lines { [self] line in
            guard !line.isEmpty else { return }
            emit(line.hasPrefix("[") ? line : "[\(algorithm)] \(line)")
            tails.withLock { tails in
                tails[algorithm, default: []].append(line)
                if tails[algorithm, default: []].count > 5 { tails[algorithm]?.removeFirst() }
            }
        }, errors: .merged)
        members.withLock { $0.append(Member(algorithm: algorithm, child: child)) }
    }

    /// Sends SIGTERM to every worker still running.
    func terminateAll() {
        for member in members.withLock({ $0 }) where member.child.exitStatus == nil { member.child.signal(SIGTERM) }
    }

    /// Waits for every worker; returns the failed ones (algorithm, exit status, last lines).
    /// When one fails the others are stopped: the run has failed already.
    func wait() async -> [(String, Int32, String)] {
        let all = members.withLock { $0 }
        // Each worker's end, as it comes (no polling): the first failure stops the others.
        return await withTaskGroup(of: (String, Int32).self) { group in
            for member in all {
                group.addTask { (member.algorithm, await member.child.wait()) }
            }
            var failures: [(String, Int32, String)] = []
            for await (algorithm, status) in group where status != 0 {
                failures.append((algorithm, status, tails.withLock { $0[algorithm, default: []].joined(separator: " | ") }))
                for other in all where other.child.exitStatus == nil { other.child.signal(SIGTERM) }
            }
            return failures
        }
    }
}

/// `run-all`'s worker processes as a service: it ends when they have all ended (`failures`
/// then says which failed); SIGTERM or Ctrl-C stops them and exits 130.
final class WorkerGroupService: Service, Sendable {
    let group: WorkerGroup
    private let outcome = Mutex<[(String, Int32, String)]>([])

    init(group: WorkerGroup) {
        self.group = group
    }

    /// The failed workers (algorithm, exit status, last lines) once `run` has returned.
    var failures: [(String, Int32, String)] { outcome.withLock { $0 } }

    func run() async throws {
        let group = self.group
        let failed = await withGracefulShutdownHandler {
            await group.wait()
        } onGracefulShutdown: {
            group.terminateAll()
            Foundation.exit(130)
        }
        outcome.withLock { $0 = failed }
    }
}

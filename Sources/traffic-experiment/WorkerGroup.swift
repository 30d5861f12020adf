import ExperimentPipeline
import Foundation
import ServiceCLI
import ServiceLifecycle
import Synchronization

/// Worker processes started by `run-all`: each one's output lines are shown as they come, its
/// last lines kept to explain a failure.
final class WorkerGroup: Sendable {
    private struct Member: Sendable {
        var algorithm: String
        var child: Subprocess.Child
    }

    private let members = Mutex<[Member]>([])
    private let tails = Mutex<[String: [String]]>([:])

    func start(_ algorithm: String, executable: String, arguments: [String]) throws {
        let child = try Subprocess.start(executable, arguments) { [self] line in
            guard !line.isEmpty else { return }
            emit(line.hasPrefix("[") ? line : "[\(algorithm)] \(line)")
            tails.withLock { tails in
                tails[algorithm, default: []].append(line)
                if tails[algorithm]!.count > 5 { tails[algorithm]!.removeFirst() }
            }
        }
        members.withLock { $0.append(Member(algorithm: algorithm, child: child)) }
    }

    /// Sends SIGTERM to every worker still running.
    func terminateAll() {
        for member in members.withLock({ $0 }) where member.child.exitStatus == nil { member.child.terminate() }
    }

    /// Waits for every worker; returns the failed ones (algorithm, exit status, last lines).
    /// When one fails the others are stopped: the run has failed already.
    func wait() async -> [(String, Int32, String)] {
        var failures: [(String, Int32, String)] = []
        while true {
            let states = members.withLock { $0 }
            for member in states {
                guard let status = member.child.exitStatus, status != 0, !failures.contains(where: { $0.0 == member.algorithm }) else { continue }
                failures.append((member.algorithm, status, tails.withLock { $0[member.algorithm, default: []].joined(separator: " | ") }))
                for other in states where other.child.exitStatus == nil { other.child.terminate() }
            }
            if states.allSatisfy({ $0.child.exitStatus != nil }) { break }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return failures
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

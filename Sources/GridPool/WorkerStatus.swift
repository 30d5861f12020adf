import Foundation
import Durations
import Synchronization

/// What a worker reports in the registry; shared by its task loop and its heartbeat.
public final class WorkerStatus: Sendable {
    private struct State {
        var current: String?
        var delivery: (stream: String, entry: String)?
        var began: ContinuousClock.Instant?
        var done = 0
        var totalSeconds = 0.0
    }

    private let state = Mutex(State())
    public let name: String
    private let started = ISO8601DateFormatter().string(from: Date())

    public init(name: String) {
        self.name = name
    }

    /// How the registry names a task: `job/task`.
    public static func label(_ job: String, _ task: String) -> String { "\(job)/\(task)" }

    /// Tasks finished by this worker.
    public var done: Int { state.withLock { $0.done } }
    /// The running task's delivery (its stream and entry id), which the heartbeat touches.
    public var delivery: (stream: String, entry: String)? { state.withLock { $0.delivery } }

    /// The worker starts `task` (a `label`) from the delivery's entry.
    public func begin(_ task: String, stream: String, entry: String) {
        state.withLock { $0.current = task; $0.delivery = (stream, entry); $0.began = .now }
    }

    /// The worker is done with its task, whatever became of it.
    public func end() { state.withLock { $0.current = nil; $0.delivery = nil; $0.began = nil } }

    /// The running task succeeded: counted, with its whole time (data, training, scoring, writes).
    public func finished() {
        state.withLock { state in
            state.done += 1
            if let began = state.began { state.totalSeconds += (ContinuousClock.now - began).inSeconds }
        }
    }

    /// The registry entry, in the model `status` reads it back with.
    public var info: PoolSnapshot.WorkerInfo {
        let s = state.withLock { $0 }
        let process = ProcessInfo.processInfo
        return PoolSnapshot.WorkerInfo(name: name, host: process.hostName, pid: Int(process.processIdentifier), started: started, currentTask: s.current,
                                       tasksDone: s.done, meanTaskSeconds: s.done > 0 ? s.totalSeconds / Double(s.done) : 0)
    }
}

/// The task life cycle as a pure state machine: start, succeed, fail (retried until
/// `maximumAttempts`, then failed for good), reclaim from a dead worker. Every transition
/// returns the new record; refused transitions return nil (a stale or duplicate event).
public struct TaskLifecycle: Sendable {
    public var maximumAttempts: Int

    public init(maximumAttempts: Int = 3) {
        self.maximumAttempts = max(1, maximumAttempts)
    }

    /// A worker takes the task from a delivery: a queued task, or one this worker itself was
    /// running (a delivery it lost track of). A task another worker runs is refused (a duplicate
    /// entry); only `reclaim` takes over another worker's task. Applying the same start twice (a
    /// retried write whose first reply was lost) changes nothing.
    public func start(_ record: TaskRecord, worker: String, now: Double) -> TaskRecord? {
        if record.state == .running, record.worker == worker, record.startedAt == now { return record }
        guard record.state == .queued || (record.state == .running && record.worker == worker) else { return nil }
        return running(record, worker: worker, now: now)
    }

    /// The record of a new attempt by `worker`.
    private func running(_ record: TaskRecord, worker: String, now: Double) -> TaskRecord {
        var next = record
        next.state = .running
        next.worker = worker
        next.attempts += 1
        next.startedAt = now
        return next
    }

    /// The worker that runs the task stored its result: done, once. The same success applied
    /// again (a lost reply) changes nothing; another worker's is refused.
    public func succeed(_ record: TaskRecord, worker: String, now: Double) -> TaskRecord? {
        if record.state == .done, record.worker == worker, record.finishedAt == now { return record }
        guard record.state == .running, record.worker == worker else { return nil }
        var next = record
        next.state = .done
        next.finishedAt = now
        return next
    }

    /// The task threw in the worker that runs it: queued again while attempts remain, else
    /// failed with its error.
    public func fail(_ record: TaskRecord, worker: String, error: String, now: Double) -> TaskRecord? {
        guard record.state == .running, record.worker == worker else { return nil }
        var next = record
        next.lastError = error
        if record.attempts >= maximumAttempts {
            next.state = .failed
            next.finishedAt = now
        } else {
            next.state = .queued
            next.worker = nil
        }
        return next
    }

    /// The worker stops before finishing the task (SIGTERM) and gives it back: queued again for
    /// any worker, this attempt not counted.
    public func handBack(_ record: TaskRecord, worker: String) -> TaskRecord? {
        guard record.state == .running, record.worker == worker else { return nil }
        var next = record
        next.state = .queued
        next.worker = nil
        next.attempts = max(0, record.attempts - 1)
        next.startedAt = nil
        return next
    }

    /// The task's worker died (no heartbeat, its delivery idle too long): another takes it over,
    /// unless its attempts are used up, then it fails with the reason. The same reclaim applied
    /// again (a lost reply) changes nothing.
    public func reclaim(_ record: TaskRecord, by worker: String, reason: String, now: Double) -> TaskRecord? {
        if record.state == .running, record.worker == worker, record.startedAt == now { return record }
        guard record.state == .running || record.state == .queued else { return nil }
        if record.attempts >= maximumAttempts {
            var failed = record
            failed.state = .failed
            // The reason it ends, and what the attempt before threw, if it threw.
            failed.lastError = record.lastError.map { "\(reason) (attempt \(record.attempts)); attempt \(record.attempts - 1) failed with: \($0)" } ?? reason
            failed.finishedAt = now
            return failed
        }
        return running(record, worker: worker, now: now)
    }
}

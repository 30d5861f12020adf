import Foundation
import Durations
import Regression
import RedisClient
import Backoff

/// What a pool worker does when a task ends: the result written once and the task done, a
/// failure queued again (after a back-off pause) or failed for good, a hand-back on stop, and
/// the events and the job's completion announced.
extension PoolWorker {
    /// Writes a result once (HSETNX by task id), marks the task done and acknowledges it; a result
    /// already there (the task ran twice) is left as it was and announced once.
    func succeeded(_ delivery: TaskDelivery, _ result: TaskResult, status: WorkerStatus, redis: RedisClient) async throws(ExperimentError) {
        let (job, task) = (delivery.job, delivery.task)
        let (worker, keys, deliveries) = (name, self.keys, self.deliveries)
        let json = try PoolJSON.encode(result, "the result of \(task.id)")
        let written = try await retry.run("writing the result of \(task.id)") { () throws(ExperimentError) -> Bool in
            do throws(RedisError) {
                return try await redis.send(.hsetnx(keys.results(job), field: task.id, json))
            } catch {
                throw .redis(error, "writing the result of \(task.id)")
            }
        }
        let finishedAt = Date().timeIntervalSince1970
        let update = try await retry.run("recording \(task.id) done") { () throws(ExperimentError) in
            try await store.update(job: job, task: task.id, on: redis) { $0.succeed($1, worker: worker, now: finishedAt) }
        }
        status.finished()
        if let update {
            try await deliveries.acknowledge(delivery, on: redis, publishing: .task(job, task.id, update.record, worker: name))
            try await announceCompletion(job, ifEndedBy: update, on: redis)
        } else {
            // Refused: another worker took the task over (this one was taken for dead) or ended
            // it. Its result is written, so there is nothing to queue again.
            _ = try await deliveries.settle(delivery, after: nil, requeueIfQueued: false, on: redis)
            try await announceCompletion(job, on: redis) // this may still have been the last task
        }
        log("[\(name)] \(job) \(task.id) done in \(String(format: "%.3f", result.fitSeconds)) s" + (written ? "" : " (another run of it had written its result)") + (update == nil ? " (another worker runs or ended it now)" : ""))
    }

    /// A task threw: queued again (back of its stream, after `retryBackoff`'s pause for its
    /// attempt, cut short by a stop) while attempts remain, else failed.
    func failed(_ delivery: TaskDelivery, error message: String, attempts: Int, stop: PoolStop, redis: RedisClient) async throws(ExperimentError) {
        let (job, task) = (delivery.job, delivery.task)
        let worker = name
        let now = Date().timeIntervalSince1970
        let update = try await retry.run("recording the failure of \(task.id)") { () throws(ExperimentError) in
            try await store.update(job: job, task: task.id, on: redis) { $0.fail($1, worker: worker, error: message, now: now) }
        }
        if update?.record.state == .queued {
            // The delivery stays pending for this worker (its beats touch it) while it waits.
            await stop.pause(Self.retryDelay(after: attempts, policy: retryBackoff))
        }
        let state = try await deliveries.settle(delivery, after: update, on: redis)
        if let update { try await announce(job, task.id, update, on: redis) } else { try await announceCompletion(job, on: redis) }
        log("[\(name)] \(job) \(task.id) \(state == .queued ? "will be retried" : state == .running ? "runs elsewhere now" : "failed"): \(message)")
    }

    /// The pause before attempt `attempts + 1`: the back-off policy's delay after that many
    /// consecutive failures.
    static func retryDelay(after attempts: Int, policy: ReconnectBackoff.Policy, random: Double = Double.random(in: 0..<1)) -> Duration {
        var backoff = ReconnectBackoff(policy: policy)
        var delay = Duration.zero
        for _ in 0..<max(1, min(attempts, 64)) { delay = backoff.recordFailure(random: random) }
        return delay
    }

    /// Gives a running task back (stop, or Redis lost while loading): queued, attempt not counted.
    func handBack(_ delivery: TaskDelivery, on redis: RedisClient) async throws(ExperimentError) {
        let worker = name
        let update = try await retry.run("handing back \(delivery.task.id)") { () throws(ExperimentError) in
            try await store.update(job: delivery.job, task: delivery.task.id, on: redis) { $0.handBack($1, worker: worker) }
        }
        _ = try await deliveries.settle(delivery, after: update, on: redis)
        if let update { try await announce(delivery.job, delivery.task.id, update, on: redis) }
    }

    /// Publishes a task's new state, and the job's completion when this change may have ended it.
    func announce(_ job: String, _ task: String, _ update: TaskUpdate, on redis: RedisClient) async throws(ExperimentError) {
        await publishQuietly(.task(job, task, update.record, worker: name), on: redis)
        try await announceCompletion(job, ifEndedBy: update, on: redis)
    }

    /// The job's completion, when `update` may have ended its last task (or repeated the change
    /// that did, after a lost reply).
    func announceCompletion(_ job: String, ifEndedBy update: TaskUpdate, on redis: RedisClient) async throws(ExperimentError) {
        if update.finishedJob || (update.record.state.isFinal && update.previous == update.record.state) {
            try await announceCompletion(job, on: redis)
        }
    }

    /// Publishes the job's completion if every task has ended and nobody announced it yet (one
    /// announcement per job, whoever gets there first; also after a lost reply).
    func announceCompletion(_ job: String, on redis: RedisClient) async throws(ExperimentError) {
        let worker = name
        guard let counts = try await retry.run("announcing job \(job)", { () throws(ExperimentError) in
            try await store.claimCompletion(job: job, by: worker, on: redis)
        }) else { return }
        await publishQuietly(.finished(job, counts), on: redis)
        log("[\(name)] job \(job) finished: \(counts.done) done, \(counts.failed) failed")
    }

    /// Publishes an event; a failure is logged, not thrown: events only wake watchers early (they
    /// poll the task states, which are the record), so a lost one costs a poll, never a task.
    func publishQuietly(_ event: PoolEvent, on redis: RedisClient) async {
        do throws(ExperimentError) { try await store.publish(event, on: redis) } catch {
            log("[\(name)] \(error.message) (watchers poll instead)")
        }
    }

    /// Trains the task on its own thread; nil when a stop was requested and `stopGrace` passed
    /// first (the thread finishes on its own; its result is dropped).
    func evaluateUnlessStopped(_ task: GridTask, _ job: LoadedJob, stop: PoolStop) async -> Result<TaskResult, ExperimentError>? {
        let first = FirstResult<Result<TaskResult, ExperimentError>?>()
        let (worker, threads, grace) = (name, threads, stopGrace)
        Task {
            do throws(ExperimentError) { first.resume(.success(try await Self.evaluate(task, job, worker: worker, threads: threads))) } catch { first.resume(.failure(error)) }
        }
        let token = stop.onRequest {
            Task {
                await PoolStop.sleep(grace)
                first.resume(nil)
            }
        }
        let outcome = await first.value()
        stop.remove(token)
        return outcome
    }

    /// One task's evaluation: the task's algorithm and parameters on its fold.
    static func evaluate(_ task: GridTask, _ job: LoadedJob, worker: String, threads: Int?) async throws(ExperimentError) -> TaskResult {
        guard task.fold >= 0, task.fold < job.folds.testRows.count else { throw ExperimentError(.stream, "task \(task.id): fold \(task.fold) does not exist") }
        var parameters = task.parameters
        if let threads, task.algorithm == RandomForestRegressor.name, parameters["n_jobs"] == nil { parameters["n_jobs"] = String(threads) }
        let regressor = try Regressors.named(task.algorithm).init(parameters: parameters)
        let evaluation = ModelEvaluation(train: job.folds.trainRows(task.fold), test: job.folds.testRows[task.fold])
        let outcome = try await evaluation.run(regressor, features: job.features, targets: job.targets)
        return TaskResult(task: task.id, algorithm: task.algorithm, parameters: task.parameters, parameterSet: task.parameterSet, fold: task.fold,
                          metrics: outcome.metrics, fitSeconds: outcome.fitSeconds, worker: worker)
    }
}

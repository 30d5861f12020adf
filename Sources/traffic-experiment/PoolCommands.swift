public import ArgumentParser
public import GridPool
import Regression
import Durations
import ExperimentData
import Foundation
import Logging
import RedisClient
import ServiceCLI
import ServiceLifecycle

/// Which pool (key prefix) the grid commands use.
struct PoolOptions: ParsableArguments {
    @Option(name: .customLong("pool-prefix"), help: "Key prefix of the worker pool (several pools can share one Redis).") var prefix = "pool"

    var keys: PoolKeys { PoolKeys(prefix: prefix) }
}

/// This process's name in the pool: host and pid.
var processName: String { "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)" }

struct Grid: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a grid-search job: every (algorithm, parameter set, fold) becomes a task for the worker pool.",
        discussion: "The CSV and the grid file are checked before anything is written. Workers: `worker --pool`; progress: `status JOB`; ranking: `results JOB`."
    )
    @OptionGroup var connection: Connection
    @OptionGroup var pool: PoolOptions
    @Option(help: "The CSV file (RFC 4180, a header row).") var csv: String
    @Option(help: "The target column's name.") var target = "target"
    @Option(help: "The grid file: JSON mapping each algorithm to its parameters' lists of values (docs/experiment.md).") var grid: String
    @Option(help: "Cross-validation folds (K-fold, the same splits for every parameter set).") var folds = 5
    @Option(help: "Seed of the fold split.") var seed: UInt64 = 42
    @Option(help: "high or normal: every worker takes high-priority tasks first.") var priority = JobPriority.normal
    @Option(name: .customLong("max-attempts"), help: "Attempts a task gets (a throw or a dead worker ends one) before it is failed for good; the job goes on.") var maxAttempts = TaskLifecycle().maximumAttempts
    @Flag(help: "Print only the job id.") var quiet = false

    func validate() throws {
        if let problem = JobStore.attemptLimitProblem(maxAttempts) { throw ValidationError(problem) }
    }

    func run() async throws {
        do {
            let dataset = try Dataset.load(csv: csv, target: target)
            let bytes: [UInt8]
            do { bytes = Array(try Data(contentsOf: URL(fileURLWithPath: grid))) } catch { throw ExperimentError(.io, "\(grid): cannot read the grid file", cause: error) }
            let spec = try GridSpec.parse(bytes, path: grid)
            _ = try KFold(rows: dataset.rowCount, folds: folds, seed: seed)
            let redis = try await connection.connect(label: "grid")
            let job = try await JobStore(keys: pool.keys).create(dataset, grid: spec, folds: folds, seed: seed, priority: priority, maxAttempts: maxAttempts, on: redis)
            await redis.close()
            if quiet {
                emit(job.id)
            } else {
                let sets = spec.entries.map { "\($0.algorithm) \($0.parameterSets.count)" }.joined(separator: ", ")
                emit("[grid] job \(job.id): \(job.taskCount) tasks (parameter sets: \(sets); \(folds) folds), priority \(priority.rawValue), data set \(dataset.name) (\(dataset.rowCount) × \(dataset.featureCount))")
                emit("[grid] follow it with: traffic-experiment status \(job.id); rank it with: traffic-experiment results \(job.id) --wait 600")
            }
        } catch let error as ExperimentError {
            fail(error.message)
        }
    }
}

extension JobPriority: ExpressibleByArgument {}

/// `worker --pool`: this process joins the pool with `concurrency` workers.
struct PoolWorkerRunner {
    var connection: Connection
    var keys: PoolKeys
    var concurrency: Int
    var name: String?
    var threads: Int?
    var idleTimeout: Double
    var heartbeat: Double
    var stopGrace: Double

    func run() async throws {
        guard concurrency >= 1, concurrency <= 256 else { throw ValidationError("--concurrency must be from 1 to 256, got \(concurrency)") }
        for (option, value) in [("--idle-timeout", idleTimeout), ("--heartbeat", heartbeat)] where !(value > 0 && value <= 86_400) {
            throw ValidationError("\(option) must be a positive number of seconds up to a day, got \(value)")
        }
        guard stopGrace >= 0, stopGrace <= 86_400 else { throw ValidationError("--stop-grace must be from 0 to 86400 seconds, got \(stopGrace)") }
        let base = name ?? processName
        let stop = PoolStop()
        let cache = JobCache()
        let threads = self.threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / concurrency)
        // A worker waits out a Redis that is away, at start as later (`PatientRetry`).
        let patience = PatientRetry(patience: PoolWorker(keys: keys, name: base).redisPatience) { emit("[pool] \($0)") }
        let connection = self.connection
        func connect(_ label: String) async throws(ExperimentError) -> RedisClient {
            try await patience.run("connecting") { () throws(ExperimentError) -> RedisClient in
                do {
                    return try await connection.connect(label: label)
                } catch let error as ExperimentError {
                    throw error
                } catch {
                    throw ExperimentError(.redis, "connecting to \(RedisConfiguration.masked(connection.url))", cause: error)
                }
            }
        }
        var clients: [(RedisClient, RedisClient)] = []
        for index in 0..<concurrency {
            clients.append((try await connect("pool-\(index)"), try await connect("pool-reader-\(index)")))
        }
        emit("[pool] \(concurrency) worker\(concurrency == 1 ? "" : "s") (\(base)\(concurrency > 1 ? "-0…\(concurrency - 1)" : "")) joined pool '\(keys.prefix)' at \(RedisConfiguration.masked(connection.url)); \(threads) thread\(threads == 1 ? "" : "s") per task")
        let quiet = { var logger = Logger(label: "traffic-experiment"); logger.logLevel = .warning; return logger }()
        var workers: [(PoolWorker, RedisClient, RedisClient)] = []
        for (index, (redis, reader)) in clients.enumerated() {
            var worker = PoolWorker(keys: keys, name: concurrency == 1 ? base : "\(base)-\(index)")
            worker.cache = cache
            worker.threads = threads
            worker.idleTimeout = .seconds(saturating: idleTimeout)
            worker.heartbeat = .seconds(saturating: heartbeat)
            worker.stopGrace = .seconds(saturating: stopGrace)
            worker.log = { emit($0) }
            workers.append((worker, redis, reader))
        }
        try await runServiceGroup([PoolWorkerService(workers: workers, stop: stop)], logger: quiet)
    }
}

/// The pool workers of this process as one service: SIGTERM or Ctrl-C asks them to stop (the
/// running tasks finish within --stop-grace or are handed back); one failing for good stops the
/// others.
struct PoolWorkerService: Service {
    let workers: [(PoolWorker, RedisClient, RedisClient)]
    let stop: PoolStop

    func run() async throws {
        let stop = self.stop
        let finished = try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for (worker, redis, reader) in workers {
                    group.addTask {
                        defer { Task { await redis.close(); await reader.close() } }
                        return try await worker.run(redis: redis, reader: reader, stop: stop)
                    }
                }
                var total = 0
                do {
                    for try await count in group { total += count }
                } catch {
                    stop.request() // one failed for good: the others stop too
                    throw error
                }
                return total
            }
        } onGracefulShutdown: {
            emit("[pool] stopping: the running tasks finish within --stop-grace or are handed back")
            stop.request()
        }
        emit("[pool] stopped after \(finished) task\(finished == 1 ? "" : "s"); deregistered")
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the pool's workers and each job's tasks per state: a live table on a terminal, JSON otherwise.")
    @OptionGroup var connection: Connection
    @OptionGroup var pool: PoolOptions
    @Argument(help: "A job id (default: the latest jobs).") var job: String?
    @Flag(help: "Print JSON once, even on a terminal.") var json = false
    @Option(help: "Seconds between refreshes of the live table.") var interval = 1.0

    func run() async throws {
        do {
            let redis = try await connection.connect(label: "status")
            let reader = PoolStatusReader(keys: pool.keys)
            if json || !stdoutIsTTY {
                let snapshot = try await reader.snapshot(job: job, on: redis)
                FileHandle.standardOutput.write(snapshot.json() + Data("\n".utf8))
                if let job, snapshot.jobs.isEmpty { fail("no job \(job) in pool '\(pool.prefix)'") }
            } else {
                // Redrawn on every pool event (at most ten times a second) and every --interval.
                let events = PoolEventWatch(configuration: try connection.configuration(), keys: pool.keys, job: job)
                while true {
                    let snapshot = try await reader.snapshot(job: job, on: redis)
                    FileHandle.standardOutput.write(Data(("\u{1B}[H\u{1B}[2J" + snapshot.table()).utf8))
                    if let job, snapshot.jobs.isEmpty { fail("no job \(job) in pool '\(pool.prefix)'") }
                    if job != nil, snapshot.jobs.allSatisfy(\.counts.isFinished) { break }
                    try await Task.sleep(for: .milliseconds(100))
                    await events.wait(atMost: .seconds(saturating: max(0.1, interval)) - .milliseconds(100))
                }
                await events.close()
            }
            await redis.close()
        } catch let error as ExperimentError {
            fail(error.message)
        }
    }
}

struct Results: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Finalise a job: rank its parameter sets by mean CV score (± std), write JSON and an HTML report.",
        discussion: "Exactly one finaliser writes a job's results (a lock in Redis); a later call prints the stored ranking, and --export writes its files again."
    )
    @OptionGroup var connection: Connection
    @OptionGroup var pool: PoolOptions
    @Argument(help: "The job id (from `grid`).") var job: String
    @Option(help: "Directory for grid_<job>_results.json and grid_<job>_report.html.") var output = "."
    @Option(help: "Seconds to wait for the job's tasks to finish (0: refuse an unfinished job).") var wait = 0.0
    @Flag(help: "Write the files even when another finaliser wrote the results.") var export = false
    @Option(help: "Rows of the ranking to print.") var top = 10

    func run() async throws {
        do {
            let redis = try await connection.connect(label: "results")
            let store = JobStore(keys: pool.keys)
            guard try await store.description(job: job, on: redis) != nil else { throw ExperimentError(.parameter, "no job \(job) in pool '\(pool.prefix)' (see `status`)") }
            let deadline = ContinuousClock.now + .seconds(saturating: max(0, wait))
            var counts = try await store.counts(job: job, on: redis)
            // Woken by the job's completion event; a poll each second covers an event lost to a
            // reconnect.
            let events = counts.isFinished || wait <= 0 ? nil : PoolEventWatch(configuration: try connection.configuration(), keys: pool.keys, job: job, wake: .completion)
            while !counts.isFinished {
                guard ContinuousClock.now < deadline, let events else {
                    await events?.close()
                    throw ExperimentError(.timeout, "job \(job) is not finished: \(counts.queued) queued, \(counts.running) running, \(counts.done) done, \(counts.failed) failed of \(counts.tasks)\(wait > 0 ? " after \(wait) s" : "; wait for it with --wait SECONDS")")
                }
                await events.wait(atMost: min(.seconds(1), deadline - .now))
                counts = try await store.counts(job: job, on: redis)
            }
            await events?.close()
            let output = self.output
            var finaliser = Finaliser(keys: pool.keys, name: processName)
            finaliser.onWait = { emit("[results] another finaliser is writing job \(job)'s results; waiting for it") }
            let outcome = try await finaliser.finalise(job: job, on: redis) { results throws(ExperimentError) in
                let (json, html) = try results.write(to: output)
                emit("[results] job \(results.job) finalised here: \(json), \(html)")
            }
            await redis.close()
            let results: GridResults
            switch outcome {
            case .written(let written):
                results = written
            case .existing(let existing):
                results = existing
                emit("[results] job \(job) was finalised by \(existing.finaliser) at \(existing.finalisedAt)")
                if export {
                    let (json, html) = try existing.write(to: output)
                    emit("[results] exported: \(json), \(html)")
                } else if !FileManager.default.fileExists(atPath: URL(fileURLWithPath: output).appendingPathComponent(existing.fileNames.json).path) {
                    emit("[results] (its files are where that finaliser ran; --export writes them into \(output))")
                }
            }
            emit("[results] \(results.tasks) tasks: \(results.done) done, \(results.failed) failed; \(String(format: "%.2f", results.wallSeconds)) s from first start to last finish")
            for entry in results.ranking.prefix(max(0, top)) {
                emit(String(format: "[results] %3d  R² %.4f ± %.4f  MSE %.4f  ", entry.rank, entry.meanR2, entry.stdR2, entry.meanMSE) + entry.label + (entry.foldsFailed > 0 ? "  (\(entry.foldsFailed) folds failed)" : ""))
            }
            for failure in results.failures.prefix(10) { emit("[results] failed: \(failure.task) after \(failure.attempts) attempts: \(failure.error)") }
        } catch let error as ExperimentError {
            fail(error.message)
        }
    }
}

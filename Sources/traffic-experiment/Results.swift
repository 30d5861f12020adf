import ArgumentParser
import GridPool
import Regression
import Durations
import ExperimentData
import Foundation
import Logging
import RedisClient
import ServiceCLI
import ServiceLifecycle

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
            let keys = pool.keys(connection)
            let redis = try await connection.connect(label: "results", slotOf: keys.jobs)
            let store = JobStore(keys: keys)
            guard try await store.description(job: job, on: redis) != nil else { throw ExperimentError(.parameter, "no job \(job) in pool '\(pool.prefix)' (see `status`)") }
            let deadline = ContinuousClock.now + .seconds(saturating: max(0, wait))
            var counts = try await store.counts(job: job, on: redis)
            // Woken by the job's completion event; a poll each second covers an event lost to a
            // reconnect.
            let events = counts.isFinished || wait <= 0 ? nil : PoolEventWatch(configuration: try connection.configuration(slotOf: keys.jobs), keys: keys, job: job, wake: .completion)
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
            var finaliser = Finaliser(keys: keys, name: processName)
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

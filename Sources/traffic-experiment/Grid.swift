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
            let keys = pool.keys(connection)
            let redis = try await connection.connect(label: "grid", slotOf: keys.jobs)
            let job = try await JobStore(keys: keys).create(dataset, grid: spec, folds: folds, seed: seed, priority: priority, maxAttempts: maxAttempts, on: redis)
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

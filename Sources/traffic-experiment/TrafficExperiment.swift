import ArgumentParser
import Regression
import ExperimentData
import ExperimentPipeline
import GridPool
import Durations
import Foundation
import Logging
import RedisClient
import ServiceCLI
import Synchronization

/// `traffic-experiment`: compare regression models on a CSV data set, in parallel, through
/// Redis Streams (docs/experiment.md).
@main
struct TrafficExperiment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "traffic-experiment",
        abstract: "Compare regression models on a CSV through Redis: one worker per algorithm, or a grid search over a pool of workers.",
        discussion: """
        Pipeline: `dispatch` (CSV → stream), `worker --algorithm` (one algorithm), `run-all` (the workers in
        parallel), `collect` (results → training_results.json and training_report.html); `run` does all of them.
        Grid search: `grid` (a job: algorithm × parameter set × fold tasks), `worker --pool` (on any machine),
        `status [JOB]`, `results JOB` (ranking, JSON and HTML). Redis: --redis-url or REDIS_URL, else
        redis://127.0.0.1:<--port>.
        """,
        subcommands: [Dispatch.self, WorkerCommand.self, RunAll.self, Collect.self, Run.self, Grid.self, Status.self, Results.self]
    )
}

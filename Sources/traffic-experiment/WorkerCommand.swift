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

struct WorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "worker",
        abstract: "Train one algorithm on the stream's data set (--algorithm), or join the grid-search pool (--pool).",
        discussion: "A pool worker stops on SIGTERM or Ctrl-C: its running task finishes within --stop-grace seconds or is handed back, then it deregisters (SIGKILL ends it at once; its task is then reclaimed after --idle-timeout)."
    )
    @OptionGroup var connection: Connection
    @Option(help: "rf, svr or lr (the pipeline's worker).") var algorithm: String?
    @OptionGroup var options: WorkerOptions
    @Flag(name: .customLong("pool"), help: "Join the grid-search pool instead: take tasks of any job until stopped.") var joinsPool = false
    @Option(name: .customLong("pool-prefix"), help: "Key prefix of the pool (with --pool).") var poolPrefix = "pool"
    @Option(help: "Workers in this process (with --pool); they share its cores and cached data sets.") var concurrency = 1
    @Option(help: "Worker name in the registry (with --pool; default host-pid, suffixed -i with --concurrency).") var name: String?
    @Option(name: .customLong("idle-timeout"), help: "Seconds a delivered task may sit idle, its worker silent, before others take it over (with --pool).") var idleTimeout = 30.0
    @Option(help: "Seconds between registry heartbeats (with --pool); the entry expires after three missed ones.") var heartbeat = 2.0
    @Option(name: .customLong("stop-grace"), help: "Seconds the running task may take after SIGTERM before it is handed back (with --pool).") var stopGrace = 10.0

    /// Options of one mode given in the other are refused rather than ignored.
    static let pipelineOnly = ["--param", "--seed", "--test-fraction", "--timeout", "--stream"]
    static let poolOnly = ["--pool-prefix", "--concurrency", "--name", "--idle-timeout", "--heartbeat", "--stop-grace"]

    func validate() throws {
        let given = Set(CommandLine.arguments.map { $0.split(separator: "=", maxSplits: 1).first.map(String.init) ?? $0 })
        if joinsPool {
            guard algorithm == nil else { throw ValidationError("--pool takes tasks of every algorithm; leave out --algorithm") }
            if let option = Self.pipelineOnly.first(where: given.contains) {
                throw ValidationError("\(option) does not apply to --pool: a job's parameters, seed and folds come from `grid`")
            }
        } else {
            guard algorithm != nil else { throw ValidationError("name the algorithm (--algorithm rf|svr|lr), or join the grid-search pool with --pool") }
            if let option = Self.poolOnly.first(where: given.contains) { throw ValidationError("\(option) applies only with --pool") }
        }
    }

    func run() async throws {
        if joinsPool {
            do {
                try await PoolWorkerRunner(connection: connection, keys: PoolKeys(prefix: connection.tagged(poolPrefix)), concurrency: concurrency, name: name, threads: options.threads,
                                           idleTimeout: idleTimeout, heartbeat: heartbeat, stopGrace: stopGrace).run()
            } catch let error as ExperimentError {
                fail("[pool] \(error.message)")
            }
            return
        }
        guard let algorithm else { return }
        let tag = "[\(algorithm)]"
        do {
            let type = try Regressors.named(algorithm)
            var worker = AlgorithmWorker(keys: connection.keys, algorithm: type, parameters: try options.parameters(for: algorithm, prefixed: false))
            worker.seed = options.seed
            worker.testFraction = options.testFraction
            worker.readTimeout = .seconds(options.timeout)
            let redis = try await connection.connect(label: "worker")
            let reader = try await connection.connect(label: "worker-reader")
            emit("\(tag) \(type.title) starting, group \(ExperimentKeys.group(algorithm))")
            _ = try await worker.run(redis: redis, reader: reader) { emit("\(tag) \($0)") }
            await redis.close()
            await reader.close()
        } catch let error as ExperimentError {
            fail("\(tag) \(error.message)")
        }
    }
}

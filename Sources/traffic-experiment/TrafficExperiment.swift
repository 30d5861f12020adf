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

/// Where Redis is and which stream to use (every step).
struct Connection: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "Redis URL (env REDIS_URL); default redis://127.0.0.1:<port>.") var redisURL: String?
    @Option(help: "Port of the local Redis, used when no --redis-url or REDIS_URL is given, and by --start-redis.") var port = 11451
    @Option(help: "The task stream; results and channels are named after it.") var stream = "tasks_stream"

    var url: String { setting(redisURL, env: "REDIS_URL") ?? "redis://127.0.0.1:\(port)" }
    var keys: ExperimentKeys { ExperimentKeys(stream: stream) }

    /// The Redis URL as a configuration (for a subscriber; `connect` for commands).
    func configuration() throws -> RedisConfiguration {
        try RedisConfiguration(url: url)
    }

    func connect(label: String = "experiment", commandTimeout: Duration = .seconds(30)) async throws -> RedisClient {
        var configuration = try configuration()
        configuration.commandTimeout = commandTimeout
        do {
            return try await RedisClient.connect(configuration: configuration, label: label, logger: Logger(label: "experiment.redis"))
        } catch {
            throw ExperimentError(.redis, "cannot reach Redis at \(RedisConfiguration.masked(url))", cause: error, hint: "start one with --start-redis, or give --redis-url",
                                  isTransient: error.isTransient)
        }
    }
}

/// Options of a dispatch.
struct DispatchOptions: ParsableArguments {
    @Option(help: "The CSV file (RFC 4180, a header row).") var csv: String
    @Option(help: "The target column's name.") var target = "target"
    @Flag(help: "Overwrite an existing stream (and its consumer groups).") var replace = false
    @Flag(name: .customLong("start-redis"), help: "Start redis-server on --port when nothing answers there (recorded as ours; --shutdown-redis stops only such a one).") var startRedis = false
}

/// Options every worker takes.
struct WorkerOptions: ParsableArguments {
    @Option(help: "Seed of the train/test split (the same for every algorithm).") var seed: UInt64 = 42
    @Option(name: .customLong("test-fraction"), help: "Share of the rows in the test set.") var testFraction = 0.2
    @Option(help: "Seconds to wait for the stream to be complete.") var timeout = 120
    @Option(help: "Threads an algorithm may train on (rf's default n_jobs); run-all shares the cores among its workers unless given. Default: every core.") var threads: Int?
    @Option(name: .customLong("param"), help: ArgumentHelp("Hyper-parameter name=value (repeatable); with several algorithms, algorithm.name=value. \(Self.parameterList)", valueName: "name=value"))
    var params: [String] = []

    static var parameterList: String {
        Regressors.all.map { "\($0.name): \($0.parameterHelp.map(\.name).joined(separator: ", "))" }.joined(separator: "; ")
    }

    /// The parameters meant for `algorithm`: plain `name=value`, or `algorithm.name=value`;
    /// `--threads` becomes rf's `n_jobs` unless that is given.
    func parameters(for algorithm: String, prefixed: Bool) throws -> [String: String] {
        var out: [String: String] = [:]
        if algorithm == RandomForestRegressor.name, let threads { out["n_jobs"] = String(threads) }
        for assignment in params {
            guard let eq = assignment.firstIndex(of: "=") else { throw ValidationError("--param '\(assignment)' is not name=value") }
            var name = String(assignment[..<eq])
            let value = String(assignment[assignment.index(after: eq)...])
            if let dot = name.firstIndex(of: "."), Regressors.names.contains(String(name[..<dot])) {
                guard name[..<dot] == algorithm else { continue }
                name = String(name[name.index(after: dot)...])
            } else if prefixed {
                throw ValidationError("--param '\(assignment)': with several algorithms name the algorithm, e.g. rf.\(name)=\(value)")
            }
            out[name] = value
        }
        return out
    }

    /// The arguments that pass these options on to a worker process.
    var forwarded: [String] {
        ["--seed", String(seed), "--test-fraction", String(testFraction), "--timeout", String(timeout)] + (threads.map { ["--threads", String($0)] } ?? [])
            + params.flatMap { ["--param", $0] }
    }
}

/// Options of a collection.
struct CollectOptions: ParsableArguments {
    @Option(help: "Directory for training_results.json and training_report.html (default: the current one).") var output = "."
    @Option(name: .customLong("collect-timeout"), help: "Seconds to wait for every algorithm's result.") var collectTimeout = 600
    @Flag(name: .customLong("shutdown-redis"), help: "Send SHUTDOWN to the Redis on --port afterwards, only if this tool started it.") var shutdownRedis = false
}

func parseAlgorithms(_ text: String) throws -> [String] {
    let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !names.isEmpty else { throw ValidationError("--algorithms names no algorithm") }
    guard Set(names).count == names.count else { throw ValidationError("--algorithms names an algorithm twice: \(text)") }
    for name in names where !Regressors.names.contains(name) {
        throw ValidationError("unknown algorithm '\(name)'; known: \(Regressors.names.joined(separator: ", "))")
    }
    return names
}

/// Prints `message` as the tool's error and exits 1 (clear message, no stack of wrappers).
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("traffic-experiment: error: \(message)\n".utf8))
    exit(1)
}

struct Dispatch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Read a CSV, normalise it and write it into the task stream.")
    @OptionGroup var connection: Connection
    @OptionGroup var options: DispatchOptions

    func run() async throws {
        do { _ = try await Self.dispatch(connection, options) } catch let error as ExperimentError { fail(error.message) }
    }

    /// Validates the CSV first (nothing reaches Redis when it is bad), then writes it.
    static func dispatch(_ connection: Connection, _ options: DispatchOptions) async throws -> String {
        let dataset = try Dataset.load(csv: options.csv, target: options.target)
        if options.startRedis {
            guard connection.redisURL == nil, env("REDIS_URL") == nil else {
                throw ExperimentError(.parameter, "--start-redis starts a local Redis on --port; it cannot be combined with --redis-url or REDIS_URL")
            }
            switch try await LocalRedis(port: connection.port).ensureRunning() {
            case .started(let pid): emit("[dispatch] started redis-server on 127.0.0.1:\(connection.port) (pid \(pid)); --shutdown-redis will stop it")
            case .alreadyRunning(let ours): emit("[dispatch] using the Redis already running on 127.0.0.1:\(connection.port)" + (ours ? " (started by traffic-experiment)" : " (not ours: it will be left running)"))
            }
        }
        let redis = try await connection.connect()
        defer { Task { await redis.close() } }
        let started = ContinuousClock.now
        let bar = ProgressBar(label: "dispatch")
        let run = try await Dispatcher(keys: connection.keys).dispatch(dataset, to: redis, replace: options.replace) { done, total in bar.update(done, total) }
        bar.finish()
        let seconds = (ContinuousClock.now - started).inSeconds
        emit("[dispatch] \(dataset.name): \(dataset.rowCount) samples × \(dataset.featureCount) features → stream \(connection.stream) (run \(run)) in \(String(format: "%.3f", seconds)) s")
        return run
    }
}

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
                try await PoolWorkerRunner(connection: connection, keys: PoolKeys(prefix: poolPrefix), concurrency: concurrency, name: name, threads: options.threads,
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

struct RunAll: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run-all", abstract: "Start the chosen workers as parallel processes and show their progress; fails when one fails.")
    @OptionGroup var connection: Connection
    @Option(help: "Algorithms, comma-separated.") var algorithms = "rf,svr,lr"
    @OptionGroup var options: WorkerOptions

    func run() async throws {
        do { try await Self.runAll(connection, try parseAlgorithms(algorithms), options) } catch let error as ExperimentError { fail(error.message) }
    }

    static func runAll(_ connection: Connection, _ algorithms: [String], _ given: WorkerOptions) async throws {
        // The workers share the machine: each trains on its share of the cores unless told.
        var options = given
        if options.threads == nil { options.threads = max(1, ProcessInfo.processInfo.activeProcessorCount / algorithms.count) }
        // Refuse bad --param values before any process starts.
        for algorithm in algorithms { _ = try Regressors.named(algorithm).init(parameters: try options.parameters(for: algorithm, prefixed: algorithms.count > 1)) }
        let executable = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        // The URL (it may hold a password) goes through the environment, not the command line.
        let common = ["--port", String(connection.port), "--stream", connection.stream]
        if let url = connection.redisURL { setenv("REDIS_URL", url, 1) }
        let started = ContinuousClock.now
        let group = WorkerGroup()
        for algorithm in algorithms {
            try group.start(algorithm, executable: executable, arguments: ["worker", "--algorithm", algorithm] + common + options.forwarded)
        }
        // Ctrl-C or SIGTERM to run-all stops its workers too.
        var quiet = Logger(label: "traffic-experiment")
        quiet.logLevel = .warning
        let service = WorkerGroupService(group: group)
        try await runServiceGroup([service], logger: quiet)
        let failures = service.failures
        let seconds = (ContinuousClock.now - started).inSeconds
        if let (algorithm, status, lastLines) = failures.first {
            throw ExperimentError(.training, "worker \(algorithm) failed (exit \(status)) after \(String(format: "%.2f", seconds)) s: \(lastLines)")
        }
        emit("[run-all] \(algorithms.joined(separator: ", ")) finished in \(String(format: "%.2f", seconds)) s")
    }
}

struct Collect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Wait for every algorithm's result, write training_results.json and training_report.html.")
    @OptionGroup var connection: Connection
    @Option(help: "Algorithms to wait for, comma-separated.") var algorithms = "rf,svr,lr"
    @OptionGroup var options: CollectOptions

    func run() async throws {
        do { try await Self.collect(connection, try parseAlgorithms(algorithms), options) } catch let error as ExperimentError { fail(error.message) }
    }

    static func collect(_ connection: Connection, _ algorithms: [String], _ options: CollectOptions, run: String? = nil) async throws {
        if options.shutdownRedis, connection.redisURL != nil || env("REDIS_URL") != nil {
            throw ExperimentError(.parameter, "--shutdown-redis stops only the local Redis on --port that --start-redis started; it cannot be combined with --redis-url or REDIS_URL")
        }
        let redis = try await connection.connect()
        var collector = Collector(keys: connection.keys, algorithms: algorithms)
        collector.timeout = .seconds(options.collectTimeout)
        let collected = try await collector.collect(from: redis, run: run)
        let (json, html) = try collector.write(collected, to: options.output)
        await redis.close()
        emit("[collect] run \(collected.run) (\(collected.dataset)): \(json), \(html)")
        for algorithm in algorithms {
            guard let r = collected.results[algorithm] else { continue }
            let name = r.title.padding(toLength: 18, withPad: " ", startingAt: 0)
            emit("[collect]   \(name) " + String(format: "MSE %.6f  R² %.4f  fit %.3fs", r.metrics.mse, r.metrics.r2, r.fitSeconds))
        }
        if options.shutdownRedis {
            let (_, reason) = await LocalRedis(port: connection.port).shutdownIfOwned()
            emit("[collect] \(reason)")
        }
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "dispatch, run-all and collect in one go.")
    @OptionGroup var connection: Connection
    @OptionGroup var dispatch: DispatchOptions
    @Option(help: "Algorithms, comma-separated.") var algorithms = "rf,svr,lr"
    @OptionGroup var worker: WorkerOptions
    @OptionGroup var collect: CollectOptions

    func run() async throws {
        do {
            let names = try parseAlgorithms(algorithms)
            let started = ContinuousClock.now
            do {
                let run = try await Dispatch.dispatch(connection, dispatch)
                try await RunAll.runAll(connection, names, worker)
                try await Collect.collect(connection, names, collect, run: run)
            } catch {
                // Leave no Redis of ours behind on failure either.
                if collect.shutdownRedis { _ = await LocalRedis(port: connection.port).shutdownIfOwned() }
                throw error
            }
            emit("[run] done in \(String(format: "%.2f", (ContinuousClock.now - started).inSeconds)) s")
        } catch let error as ExperimentError {
            fail(error.message)
        }
    }
}

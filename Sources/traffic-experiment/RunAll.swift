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

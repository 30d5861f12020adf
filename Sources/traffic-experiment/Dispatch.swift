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

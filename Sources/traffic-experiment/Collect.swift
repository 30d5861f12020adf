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

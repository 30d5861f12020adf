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

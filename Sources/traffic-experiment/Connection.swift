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
    /// The experiment's names. On a Redis Cluster (`redis-cluster://`) the stream's name is their
    /// hash tag (`{tasks_stream}`, `{tasks_stream}:results:<run>`…): one run's steps are
    /// multi-key, so its keys live in one slot, on one primary.
    var keys: ExperimentKeys { ExperimentKeys(stream: tagged(stream)) }

    /// Whether the URL names a Redis Cluster.
    var isCluster: Bool { (try? RedisConfiguration(url: url))?.isCluster ?? false } // try?: a bad URL is reported where it is connected

    /// `name` as a hash tag on a cluster (unless it holds one already), else as it is.
    func tagged(_ name: String) -> String { isCluster && !name.contains("{") ? "{\(name)}" : name }

    /// The Redis URL as a configuration (for a subscriber; `connect` for commands). On a
    /// cluster it names the primary serving `key`'s slot (default: the experiment's), followed
    /// across failovers and reshards.
    func configuration(slotOf key: String? = nil) throws -> RedisConfiguration {
        try RedisConfiguration(url: url).pinned(toSlotOf: key ?? keys.stream)
    }

    /// Connects to Redis (on a cluster, to the primary of `key`'s slot; default the experiment's).
    func connect(label: String = "experiment", commandTimeout: Duration = .seconds(30), slotOf key: String? = nil) async throws -> RedisClient {
        var configuration = try configuration(slotOf: key)
        configuration.commandTimeout = commandTimeout
        do {
            return try await RedisClient.connect(configuration: configuration, label: label, logger: Logger(label: "experiment.redis"))
        } catch {
            throw ExperimentError(.redis, "cannot reach Redis at \(RedisConfiguration.masked(url))", cause: error, hint: "start one with --start-redis, or give --redis-url",
                                  isTransient: error.isTransient)
        }
    }
}

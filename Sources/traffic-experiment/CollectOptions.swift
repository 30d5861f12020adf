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

/// Options of a collection.
struct CollectOptions: ParsableArguments {
    @Option(help: "Directory for training_results.json and training_report.html (default: the current one).") var output = "."
    @Option(name: .customLong("collect-timeout"), help: "Seconds to wait for every algorithm's result.") var collectTimeout = 600
    @Flag(name: .customLong("shutdown-redis"), help: "Send SHUTDOWN to the Redis on --port afterwards, only if this tool started it.") var shutdownRedis = false
}

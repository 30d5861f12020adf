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

/// Options of a dispatch.
struct DispatchOptions: ParsableArguments {
    @Option(help: "The CSV file (RFC 4180, a header row).") var csv: String
    @Option(help: "The target column's name.") var target = "target"
    @Flag(help: "Overwrite an existing stream (and its consumer groups).") var replace = false
    @Flag(name: .customLong("start-redis"), help: "Start redis-server on --port when nothing answers there (recorded as ours; --shutdown-redis stops only such a one).") var startRedis = false
}

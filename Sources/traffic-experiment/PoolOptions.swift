import ArgumentParser
import GridPool
import Regression
import Durations
import ExperimentData
import Foundation
import Logging
import RedisClient
import ServiceCLI
import ServiceLifecycle

/// Which pool (key prefix) the grid commands use.
struct PoolOptions: ParsableArguments {
    @Option(name: .customLong("pool-prefix"), help: "Key prefix of the worker pool (several pools can share one Redis).") var prefix = "pool"

    var keys: PoolKeys { PoolKeys(prefix: prefix) }
}

/// This process's name in the pool: host and pid.
var processName: String { "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)" }

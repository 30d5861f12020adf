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

    /// The pool's names; on a cluster the prefix is their hash tag (`{pool}:jobs`…), so job
    /// creation's one transaction stays in one slot and the pool lives on one primary.
    func keys(_ connection: Connection) -> PoolKeys { PoolKeys(prefix: connection.tagged(prefix)) }
}

/// This process's name in the pool: host and pid.
var processName: String { "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)" }

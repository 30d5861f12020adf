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

/// `worker --pool`: this process joins the pool with `concurrency` workers.
struct PoolWorkerRunner {
    var connection: Connection
    var keys: PoolKeys
    var concurrency: Int
    var name: String?
    var threads: Int?
    var idleTimeout: Double
    var heartbeat: Double
    var stopGrace: Double

    func run() async throws {
        guard concurrency >= 1, concurrency <= 256 else { throw ValidationError("--concurrency must be from 1 to 256, got \(concurrency)") }
        for (option, value) in [("--idle-timeout", idleTimeout), ("--heartbeat", heartbeat)] where !(value > 0 && value <= 86_400) {
            throw ValidationError("\(option) must be a positive number of seconds up to a day, got \(value)")
        }
        guard stopGrace >= 0, stopGrace <= 86_400 else { throw ValidationError("--stop-grace must be from 0 to 86400 seconds, got \(stopGrace)") }
        let base = name ?? processName
        let stop = PoolStop()
        let cache = JobCache()
        let threads = self.threads ?? max(1, ProcessInfo.processInfo.activeProcessorCount / concurrency)
        // A worker waits out a Redis that is away, at start as later (`PatientRetry`).
        let patience = PatientRetry(patience: PoolWorker(keys: keys, name: base).redisPatience) { emit("[pool] \($0)") }
        let connection = self.connection
        func connect(_ label: String) async throws(ExperimentError) -> RedisClient {
            try await patience.run("connecting") { () throws(ExperimentError) -> RedisClient in
                do {
                    return try await connection.connect(label: label, slotOf: keys.jobs)
                } catch let error as ExperimentError {
                    throw error
                } catch {
                    throw ExperimentError(.redis, "connecting to \(RedisConfiguration.masked(connection.url))", cause: error)
                }
            }
        }
        var clients: [(RedisClient, RedisClient)] = []
        for index in 0..<concurrency {
            clients.append((try await connect("pool-\(index)"), try await connect("pool-reader-\(index)")))
        }
        emit("[pool] \(concurrency) worker\(concurrency == 1 ? "" : "s") (\(base)\(concurrency > 1 ? "-0…\(concurrency - 1)" : "")) joined pool '\(keys.prefix)' at \(RedisConfiguration.masked(connection.url)); \(threads) thread\(threads == 1 ? "" : "s") per task")
        let quiet = { var logger = Logger(label: "traffic-experiment"); logger.logLevel = .warning; return logger }()
        var workers: [(PoolWorker, RedisClient, RedisClient)] = []
        for (index, (redis, reader)) in clients.enumerated() {
            var worker = PoolWorker(keys: keys, name: concurrency == 1 ? base : "\(base)-\(index)")
            worker.cache = cache
            worker.threads = threads
            worker.idleTimeout = .seconds(saturating: idleTimeout)
            worker.heartbeat = .seconds(saturating: heartbeat)
            worker.stopGrace = .seconds(saturating: stopGrace)
            worker.log = { emit($0) }
            workers.append((worker, redis, reader))
        }
        try await runServiceGroup([PoolWorkerService(workers: workers, stop: stop)], logger: quiet)
    }
}

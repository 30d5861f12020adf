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

/// The pool workers of this process as one service: SIGTERM or Ctrl-C asks them to stop (the
/// running tasks finish within --stop-grace or are handed back); one failing for good stops the
/// others.
struct PoolWorkerService: Service {
    let workers: [(PoolWorker, RedisClient, RedisClient)]
    let stop: PoolStop

    func run() async throws {
        let stop = self.stop
        let finished = try await withGracefulShutdownHandler {
            try await withThrowingTaskGroup(of: Int.self) { group in
                for (worker, redis, reader) in workers {
                    group.addTask {
                        defer { Task { await redis.close(); await reader.close() } }
                        return try await worker.run(redis: redis, reader: reader, stop: stop)
                    }
                }
                var total = 0
                do {
                    for try await count in group { total += count }
                } catch {
                    stop.request() // one failed for good: the others stop too
                    throw error
                }
                return total
            }
        } onGracefulShutdown: {
            emit("[pool] stopping: the running tasks finish within --stop-grace or are handed back")
            stop.request()
        }
        emit("[pool] stopped after \(finished) task\(finished == 1 ? "" : "s"); deregistered")
    }
}

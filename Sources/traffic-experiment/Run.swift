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

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "dispatch, run-all and collect in one go.")
    @OptionGroup var connection: Connection
    @OptionGroup var dispatch: DispatchOptions
    @Option(help: "Algorithms, comma-separated.") var algorithms = "rf,svr,lr"
    @OptionGroup var worker: WorkerOptions
    @OptionGroup var collect: CollectOptions

    func run() async throws {
        do {
            let names = try parseAlgorithms(algorithms)
            let started = ContinuousClock.now
            do {
                let run = try await Dispatch.dispatch(connection, dispatch)
                try await RunAll.runAll(connection, names, worker)
                try await Collect.collect(connection, names, collect, run: run)
            } catch {
                // Leave no Redis of ours behind on failure either.
                if collect.shutdownRedis { _ = await LocalRedis(port: connection.port).shutdownIfOwned() }
                throw error
            }
            emit("[run] done in \(String(format: "%.2f", (ContinuousClock.now - started).inSeconds)) s")
        } catch let error as ExperimentError {
            fail(error.message)
        }
    }
}

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

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the pool's workers and each job's tasks per state: a live table on a terminal, JSON otherwise.")
    @OptionGroup var connection: Connection
    @OptionGroup var pool: PoolOptions
    @Argument(help: "A job id (default: the latest jobs).") var job: String?
    @Flag(help: "Print JSON once, even on a terminal.") var json = false
    @Option(help: "Seconds between refreshes of the live table.") var interval = 1.0

    func run() async throws {
        do {
            let keys = pool.keys(connection)
            let redis = try await connection.connect(label: "status", slotOf: keys.jobs)
            let reader = PoolStatusReader(keys: keys)
            if json || !stdoutIsTTY {
                let snapshot = try await reader.snapshot(job: job, on: redis)
                FileHandle.standardOutput.write(snapshot.json() + Data("\n".utf8))
                if let job, snapshot.jobs.isEmpty { fail("no job \(job) in pool '\(pool.prefix)'") }
            } else {
                // Redrawn on every pool event (at most ten times a second) and every --interval.
                let events = PoolEventWatch(configuration: try connection.configuration(slotOf: keys.jobs), keys: keys, job: job)
                while true {
                    let snapshot = try await reader.snapshot(job: job, on: redis)
                    FileHandle.standardOutput.write(Data(("\u{1B}[H\u{1B}[2J" + snapshot.table()).utf8))
                    if let job, snapshot.jobs.isEmpty { fail("no job \(job) in pool '\(pool.prefix)'") }
                    if job != nil, snapshot.jobs.allSatisfy(\.counts.isFinished) { break }
                    try await Task.sleep(for: .milliseconds(100))
                    await events.wait(atMost: .seconds(saturating: max(0.1, interval)) - .milliseconds(100))
                }
                await events.close()
            }
            await redis.close()
        } catch let error as ExperimentError {
            fail(error.message)
        }
    }
}

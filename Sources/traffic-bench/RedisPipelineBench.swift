import Durations
import ArgumentParser
import Foundation
import RedisClient
import LocalServices

/// Pipelined SETEX throughput of this client against `redis-benchmark -P` on the same server.
struct RedisPipelineBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis",
        abstract: "Pipelined SETEX: this client vs redis-benchmark -P on one private redis-server."
    )

    @Option(help: "SETEX commands per run.") var commands = 1_000_000
    @Option(help: "Commands per pipeline (one round trip each).") var pipeline = 1_000
    @Option(help: "Value size in bytes.") var valueSize = 100
    @Option(help: "Runs of each side; the best is reported.") var runs = 3

    func run() async throws {
        let server = try await RedisServer()
        report("redis-server \(server.url), \(commands) SETEX per run, pipeline \(pipeline), value \(valueSize) B, best of \(runs)")
        let client = try await RedisClient.connect(configuration: server.configuration)
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: valueSize)
        let keys = (0..<pipeline).map { "bench:key:\($0)" }

        var ours = 0.0
        for _ in 0..<runs {
            let clock = ContinuousClock()
            let start = clock.now
            var sent = 0
            while sent < commands {
                var batch = RedisPipeline(capacity: pipeline)
                for i in 0..<min(pipeline, commands - sent) {
                    batch.append(.setex(keys[i], seconds: 300, value))
                }
                let replies = try await client.execute(batch)
                guard replies.allSatisfy({ $0 == .status("OK") }) else { throw ValidationError("a SETEX failed: \(replies.first { $0 != .status("OK") }!)") }
                sent += batch.count
            }
            ours = max(ours, Double(commands) / (clock.now - start).inSeconds)
        }

        guard let tool = which("redis-benchmark") else { throw ValidationError("redis-benchmark not found (apt-get install redis-tools)") }
        var reference = 0.0
        for _ in 0..<runs {
            let result = try await runCommand(tool, [
                "-h", "127.0.0.1", "-p", String(server.port), "-c", "1", "-n", String(commands), "-P", String(pipeline),
                "-r", String(pipeline), "--csv", "SETEX", "bench:key:__rand_int__", "300", String(repeating: "x", count: valueSize),
            ], timeout: .seconds(600))
            // CSV: "test","rps",... — the second field of the last line.
            let line = result.stdout.split(separator: "\n").last ?? ""
            let fields = line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
            guard fields.count > 1, let rps = Double(fields[1]) else { throw ValidationError("cannot parse redis-benchmark output: \(result.stdout) \(result.stderr)") }
            reference = max(reference, rps)
        }
        report(String(format: "this client (RedisClient.execute):  %10.0f SETEX/s", ours))
        report(String(format: "redis-benchmark -c 1 -P %d:       %10.0f SETEX/s", pipeline, reference))
        report(String(format: "ratio (this client / redis-benchmark): %.2f", ours / reference))
        server.stop()
    }
}

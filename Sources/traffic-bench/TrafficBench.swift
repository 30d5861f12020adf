import ArgumentParser
import Foundation

/// Benchmarks of the product, run in release builds; they print figures, they are not tests.
@main
struct TrafficBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "traffic-bench",
        abstract: "Benchmarks: prints throughput and latency figures with a reference run for comparison.",
        subcommands: [RedisPipelineBench.self, KafkaThroughputBench.self, AggregatorEndToEndBench.self, PlannerBench.self]
    )
}

/// Writes one line of results straight to stdout (unbuffered, so figures show up as measured).
func report(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

import ArgumentParser
import Foundation
import Logging

/// Benchmarks of the product, run in release builds; they print figures, they are not tests.
@main
struct TrafficBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "traffic-bench",
        abstract: "Benchmarks: prints throughput and latency figures with a reference run for comparison.",
        subcommands: [RedisPipelineBench.self, KafkaThroughputBench.self, AggregatorEndToEndBench.self, AppliedOffsetCostBench.self, ClusterCostBench.self, PlannerBench.self, GatewayBench.self, ReplicationBench.self]
    )
}

/// Writes one line of results straight to stdout (unbuffered, so figures show up as measured).
/// Logs to stderr from `level` up only: the benchmarks' own lines stay readable.
func quietLogging(_ level: Logger.Level) {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = level
        return handler
    }
}

func report(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// The `p` quantile (0…1) of ascending `sorted` values; 0 when empty.
func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

/// The value of the first `"requestId":"…"` in a JSON text (results put their position first,
/// then the simulator's requestId), found by a byte scan instead of a parse.
func requestID<Bytes: RandomAccessCollection>(in bytes: Bytes) -> String? where Bytes.Element == UInt8, Bytes.Index == Int {
    let needle = Array(#""requestId":""#.utf8)
    guard bytes.count > needle.count else { return nil }
    var i = bytes.startIndex
    let last = bytes.endIndex - needle.count
    while i <= last {
        if bytes[i] == needle[0] {
            var j = 1
            while j < needle.count, bytes[i + j] == needle[j] { j += 1 }
            if j == needle.count {
                let start = i + needle.count
                guard let end = bytes[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
                return String(decoding: bytes[start..<end], as: UTF8.self)
            }
        }
        i += 1
    }
    return nil
}

/// Resident memory of a process in bytes (from /proc), nil when unreadable.
func residentBytes(pid: Int32) -> Int? {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
          let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") else { return nil }
    return kb * 1024
}

/// CPU time (user + system) a process has used so far, from /proc/<pid>/stat.
func cpuSeconds(pid: Int32) -> Double? {
    cpuTimes(pid: pid).map { $0.user + $0.system }
}

/// User and system CPU seconds a process has used so far, from /proc/<pid>/stat.
func cpuTimes(pid: Int32) -> (user: Double, system: Double)? {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return nil }
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    guard fields.count > 13, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
    let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
    return (user / ticks, system / ticks)
}

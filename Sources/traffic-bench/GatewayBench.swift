import Durations
import Aggregator
import ArgumentParser
import Foundation
import Logging
import RedisClient
import Synchronization
import LocalServices
import TrafficModel
import Simulation

/// The WebSocket gateway under load: a private redis-server, the release `traffic-gateway`
/// binary as a child process (and with `--peer` the Python baseline after it, under the same
/// load), results written exactly as the aggregator writes them, and many WebSocket clients on
/// raw epoll sockets in this process.
struct GatewayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Fan-out: CPU and system calls per delivery, deliveries/s, publish → client latency, memory per idle connection; --peer adds the Python baseline and the ratios."
    )

    @Option(help: "Concurrent WebSocket clients in the fan-out run.") var clients = 1_000
    @Option(help: "Cameras results are spread over.") var cameras = 50
    @Option(name: .customLong("cameras-per-client"), help: "Cameras each client subscribes to.") var camerasPerClient = 1
    @Option(help: "Results per second published into Redis.") var rate = 2_000
    @Option(name: .customLong("seconds"), help: "Seconds of the fan-out run.") var duration = 10
    @Option(name: .customLong("warmup-seconds"), help: "Seconds published at the same rate before measuring starts (not counted).") var warmup = 1
    @Option(help: "Idle connections in the memory run (0: skip).") var idle = 10_000
    @Option(name: .customLong("idle-during"), help: "Idle connections held open during the fan-out run (0: none).") var idleDuring = 0
    @Option(name: .customLong("client-threads"), help: "Threads reading the clients' sockets (one epoll each).") var clientThreads = 1
    @Flag(help: "Clients ask for batched results (several results in one frame when more than one is queued).") var batch = false
    @Flag(help: "Also run the Python baseline (../shared/peers/gateway_py) under the same load and print the ratios.") var peer = false
    @Option(help: "Python with `websockets` and `redis` (scripts/bench-venv.sh makes it).") var python = ".venv-bench/bin/python"
    @Option(name: .customLong("peer-script"), help: "The Python baseline gateway.") var peerScript = "../shared/peers/gateway_py/gateway.py"
    @Flag(name: .customLong("no-syscalls"), help: "Skip counting system calls (perf stat).") var noSyscalls = false
    @Option(name: .customLong("gateway"), help: "The traffic-gateway binary (default: the one next to this one), e.g. an older build to compare.") var gatewayBinary: String?

    /// What one gateway did under the load.
    struct Figures {
        var name: String
        var delivered = 0
        var expected = 0
        var deliveriesPerSecond = 0.0
        var p50 = 0.0, p99 = 0.0, max = 0.0
        var cpuMicrosecondsPerDelivery = 0.0
        var userMicrosecondsPerDelivery = 0.0
        var syscallsPerDelivery: Double?
        var clientMicrosecondsPerDelivery = 0.0
        var idleBytesPerConnection: Double?
        /// The gateway's resident memory at the end of the fan-out run.
        var residentBytes = 0
        var perSecondP99: [Double] = []
    }

    enum Gateway { case swift, python }

    func run() async throws {
        quietLogging(.error)
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)

        let ours = try await measure(.swift)
        show(ours)
        guard peer else { return }
        let theirs = try await measure(.python)
        show(theirs)
        report("ratios (gateway / Python baseline, same load):")
        report(String(format: "  CPU per delivery %.2f   system calls per delivery %@   p99 %.2f   memory per idle connection %@",
                      ours.cpuMicrosecondsPerDelivery / theirs.cpuMicrosecondsPerDelivery,
                      ratio(ours.syscallsPerDelivery, theirs.syscallsPerDelivery), ours.p99 / max(theirs.p99, 0.001),
                      ratio(ours.idleBytesPerConnection, theirs.idleBytesPerConnection)))
    }

    private func ratio(_ a: Double?, _ b: Double?) -> String {
        guard let a, let b, b > 0 else { return "n/a" }
        return String(format: "%.2f", a / b)
    }

    private func show(_ f: Figures) {
        report("[\(f.name)] \(clients) clients × \(camerasPerClient) camera(s) of \(cameras), \(rate) results/s for \(duration) s\(batch ? ", batched" : "")")
        report(String(format: "[%@] deliveries: %d of %d expected, %.0f deliveries/s; publish → client receive p50 %.2f ms  p99 %.2f ms  max %.2f ms",
                      f.name, f.delivered, f.expected, f.deliveriesPerSecond, f.p50, f.p99, f.max))
        report(String(format: "[%@] gateway CPU per delivery %.2f µs (user %.2f, system %.2f); system calls per delivery %@; load generator CPU per delivery %.2f µs",
                      f.name, f.cpuMicrosecondsPerDelivery, f.userMicrosecondsPerDelivery, f.cpuMicrosecondsPerDelivery - f.userMicrosecondsPerDelivery, f.syscallsPerDelivery.map { String(format: "%.2f", $0) } ?? "n/a", f.clientMicrosecondsPerDelivery))
        report(String(format: "[%@] gateway RSS at the end of the run: %.1f MiB", f.name, Double(f.residentBytes) / 1_048_576))
        report("[\(f.name)] p99 per second (ms): " + f.perSecondP99.map { String(format: "%.1f", $0) }.joined(separator: " "))
        if let idle = f.idleBytesPerConnection { report(String(format: "[%@] memory per idle connection: %.1f KiB (%d connections)", f.name, idle / 1024, self.idle)) }
    }

    /// One gateway, fresh Redis: the fan-out run, then the idle-memory run.
    private func measure(_ kind: Gateway) async throws -> Figures {
        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let port = try FreePort.find()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("bench-gateway-\(kind).log").path
        let gateway: ChildProcess
        switch kind {
        case .swift:
            let binary = gatewayBinary ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("traffic-gateway").path
            guard FileManager.default.isExecutableFile(atPath: binary) else { throw ValidationError("build traffic-gateway first: swift build -c release --product traffic-gateway") }
            gateway = try ChildProcess(binary, ["run", "--port", String(port), "--redis-url", server.url, "--connect-rate", "100000", "--max-connections", "50000", "--log-level", "error"], output: .appendToFile(log))
        case .python:
            guard FileManager.default.isExecutableFile(atPath: python) else { throw ValidationError("\(python) not found: run scripts/bench-venv.sh") }
            guard FileManager.default.fileExists(atPath: peerScript) else { throw ValidationError("\(peerScript) not found (--peer-script)") }
            gateway = try ChildProcess(python, [peerScript, "--port", String(port), "--redis-url", server.url, "--log-level", "WARNING"], output: .appendToFile(log))
        }
        defer { gateway.terminate() }
        try await waitUntil("gateway healthy", timeout: .seconds(30)) { (try? await httpGet(port: port, path: "/healthz"))?.status == 200 }

        let background = idleDuring > 0 ? RawWebSocketLoad.openIdle(port: port, count: idleDuring) : []
        if idleDuring > 0 { report("holding \(background.count) idle connections during the fan-out") }
        var figures = try await fanOut(port: port, redis: redis, gatewayPID: gateway.pid, name: kind == .swift ? "gateway" : "python")
        for fd in background { close(fd) }
        if idle > 0 { figures.idleBytesPerConnection = try await idleMemory(port: port, gatewayPID: gateway.pid) }
        await redis.close()
        server.stop()
        return figures
    }

    /// `clients` connections, each on `camerasPerClient` cameras, `rate` results/s for `duration` s.
    private func fanOut(port: Int, redis: RedisClient, gatewayPID: Int32, name: String) async throws -> Figures {
        // Results and who receives them.
        var simulator = ResultSimulator(cameras: cameras, alertRatio: 0.2, seed: 3, runTag: "gw")
        let base = Int64(Date().timeIntervalSince1970 * 1000)
        let total = rate * duration
        let warmupTotal = rate * warmup
        let frames = (0..<(warmupTotal + total)).map { simulator.next(at: base + Int64($0)) }
        var subscribers = [Int](repeating: 0, count: cameras)
        var subscriptions: [String] = []
        for i in 0..<clients {
            let watched = (0..<camerasPerClient).map { (i * camerasPerClient + $0) % cameras }
            for camera in Set(watched) { subscribers[camera] += 1 }
            subscriptions.append(#"{"type":"subscribe","cameras":[\#(Set(watched).sorted().map(String.init).joined(separator: ","))]\#(batch ? #","batch":true"# : "")}"#)
        }
        let expected = frames[warmupTotal...].reduce(0) { $0 + subscribers[$1.cameraId] }

        // Publish time (uptime ns) per result, by its request id's sequence number (1-based).
        let sentAt = Mutex([UInt64](repeating: 0, count: frames.count + 1))
        let counters = FanOutCounters()
        var reserved: [(at: UInt64, ms: Double)] = []
        reserved.reserveCapacity(expected + 1024)
        let latencies = Mutex(reserved)
        let load = try RawWebSocketLoad(port: port, subscriptions: subscriptions, threads: clientThreads) { event, now in
            switch event {
            case .snapshot:
                counters.snapshots.add(1, ordering: .relaxed)
            case .result(let sequence?):
                let at = sentAt.withLock { sequence < $0.count ? $0[sequence] : 0 }
                guard at > 0, at >= counters.measureFrom.load(ordering: .relaxed) else { return }
                counters.deliveries.add(1, ordering: .relaxed)
                latencies.withLock { $0.append((at, Double(now &- at) / 1e6)) }
            case .result(nil), .other:
                break
            }
        }
        try await waitUntil("every client has its snapshot", timeout: .seconds(60)) { counters.snapshots.load(ordering: .relaxed) >= clients }

        // Publisher: the aggregator's planner and write transaction, a batch every 5 ms.
        let keys = KeySchema()
        let planner = WritePlanner(keys: keys, alertRule: AlertRule())
        let writer = WriteTransaction()
        let tick = Duration.milliseconds(5)
        let perTick = max(1, rate / 200)
        let clock = ContinuousClock()
        let publishStart = clock.now
        var start = publishStart
        var cpuStart = (user: 0.0, system: 0.0)
        var index = 0
        var tickNumber = 0
        var syscalls: Task<(count: Int, deliveries: Int)?, Never>?
        while index < frames.count {
            try await clock.sleep(until: publishStart + tick * tickNumber)
            tickNumber += 1
            if index >= warmupTotal, counters.measureFrom.load(ordering: .relaxed) == .max {
                start = clock.now
                cpuStart = cpuTimes(pid: gatewayPID) ?? (0, 0)
                counters.measureFrom.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
                if !noSyscalls { syscalls = countSyscalls(pid: gatewayPID, seconds: max(1, duration - 1), counters: counters) }
            }
            let slice = frames[index..<min(index + perTick, frames.count)]
            let sequences = (index + 1)...(index + slice.count)
            index += slice.count
            let valid = try slice.map { try AssessmentMessage(validating: $0.assessment) }
            let plan = planner.plan(valid, detections: slice.map(\.detection))
            // Timed when the transaction that publishes them is sent (after its reads; the
            // benchmark is the only writer, so there is exactly one such moment per batch).
            _ = try await writer.apply(plan, on: redis) {
                let now = DispatchTime.now().uptimeNanoseconds
                sentAt.withLock { for sequence in sequences { $0[sequence] = now } }
            }
        }
        let drainDeadline = ContinuousClock.now + .seconds(30)
        while counters.deliveries.load(ordering: .relaxed) < expected, ContinuousClock.now < drainDeadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        let span = (clock.now - start).inSeconds
        let cpuEnd = cpuTimes(pid: gatewayPID) ?? (0, 0)
        let (userUsed, systemUsed) = (cpuEnd.user - cpuStart.user, cpuEnd.system - cpuStart.system)
        let counted = await syscalls?.value
        let resident = residentBytes(pid: gatewayPID) ?? 0
        let clientCPU = load.stop()
        let delivered = counters.deliveries.load(ordering: .relaxed)
        let samples = latencies.withLock { $0 }
        let sorted = samples.map(\.ms).sorted()
        var figures = Figures(name: name)
        figures.delivered = delivered
        figures.residentBytes = resident
        figures.expected = expected
        figures.deliveriesPerSecond = Double(delivered) / span
        figures.p50 = percentile(sorted, 0.5)
        figures.p99 = percentile(sorted, 0.99)
        figures.max = sorted.last ?? 0
        figures.cpuMicrosecondsPerDelivery = (userUsed + systemUsed) * 1e6 / Double(max(delivered, 1))
        figures.userMicrosecondsPerDelivery = userUsed * 1e6 / Double(max(delivered, 1))
        figures.clientMicrosecondsPerDelivery = clientCPU * 1e6 / Double(max(delivered + clients, 1))
        if let counted, counted.deliveries > 0 { figures.syscallsPerDelivery = Double(counted.count) / Double(counted.deliveries) }
        if let first = samples.map(\.at).min() {
            var perSecond: [[Double]] = []
            for sample in samples {
                let second = Int((sample.at - first) / 1_000_000_000)
                while perSecond.count <= second { perSecond.append([]) }
                perSecond[second].append(sample.ms)
            }
            figures.perSecondP99 = perSecond.map { percentile($0.sorted(), 0.99) }
        }
        return figures
    }

    /// System calls the gateway makes in `seconds` (perf stat on the raw_syscalls tracepoint,
    /// which costs the traced process next to nothing), with the deliveries made meanwhile.
    private func countSyscalls(pid: Int32, seconds: Int, counters: FanOutCounters) -> Task<(count: Int, deliveries: Int)?, Never>? {
        guard let perf = which("perf") else {
            report("perf not installed: system calls are not counted")
            return nil
        }
        let before = counters.deliveries.load(ordering: .relaxed)
        return Task {
            guard let result = try? await runCommand(perf, ["stat", "-x", ",", "-e", "raw_syscalls:sys_enter", "-p", String(pid), "--", "sleep", String(seconds)], timeout: .seconds(Double(seconds) + 30)) else { return nil }
            let after = counters.deliveries.load(ordering: .relaxed)
            let line = result.stderr.split(separator: "\n").first { $0.contains("raw_syscalls:sys_enter") }
            guard let count = line.flatMap({ Int($0.split(separator: ",").first ?? "") }) else {
                report("perf stat gave no count: \(result.stderr.prefix(200))")
                return nil
            }
            return (count, after - before)
        }
    }

    /// Opens `idle` connections that only stay open; the gateway's memory per connection.
    private func idleMemory(port: Int, gatewayPID: Int32) async throws -> Double {
        try await Task.sleep(for: .milliseconds(500))
        let before = residentBytes(pid: gatewayPID) ?? 0
        let fds = RawWebSocketLoad.openIdle(port: port, count: idle)
        defer { for fd in fds { close(fd) } }
        try await Task.sleep(for: .seconds(1))
        let after = residentBytes(pid: gatewayPID) ?? 0
        return Double(after - before) / Double(max(fds.count, 1))
    }
}

/// What the client threads count during a fan-out run.
final class FanOutCounters: Sendable {
    let deliveries = Atomic<Int>(0)
    let snapshots = Atomic<Int>(0)
    /// Deliveries of results published before this moment (the warm-up) are not counted.
    let measureFrom = Atomic<UInt64>(.max)
}

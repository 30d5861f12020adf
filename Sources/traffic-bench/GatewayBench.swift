import Aggregator
import ArgumentParser
import Foundation
import Logging
import RedisClient
import Synchronization
import LocalServices
import TrafficModel
import Websockets
import Simulation

/// The WebSocket gateway under load: a private redis-server, the release `traffic-gateway`
/// binary as a child process, results written exactly as the aggregator writes them, and many
/// WebSocket clients on one lws client thread in this process.
struct GatewayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gateway",
        abstract: "Fan-out deliveries/s and publish → client latency; memory per idle connection."
    )

    @Option(help: "Concurrent WebSocket clients in the fan-out run.") var clients = 1_000
    @Option(help: "Cameras; each client watches one.") var cameras = 50
    @Option(help: "Results per second published into Redis.") var rate = 2_000
    @Option(name: .customLong("seconds"), help: "Seconds of the fan-out run.") var duration = 10
    @Option(name: .customLong("warmup-seconds"), help: "Seconds published at the same rate before measuring starts (not counted).") var warmup = 1
    @Option(help: "Idle connections in the memory run (0: skip).") var idle = 10_000
    @Option(name: .customLong("idle-during"), help: "Idle connections held open during the fan-out run (0: none).") var idleDuring = 0
    @Option(name: .customLong("client-threads"), help: "Client service threads (lws polls every socket of its thread on each wake-up).") var clientThreads = 2

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .error
            return handler
        }
        var limit = rlimit()
        getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        limit.rlim_cur = limit.rlim_max
        setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)

        let server = try await RedisServer()
        let redis = try await RedisClient.connect(configuration: server.configuration)
        let binary = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("traffic-gateway").path
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw ValidationError("build traffic-gateway first: swift build -c release --product traffic-gateway") }
        let port = try FreePort.find()
        let gateway = try ChildProcess(binary, ["run", "--port", String(port), "--redis-url", server.url, "--connect-rate", "100000", "--max-connections", "50000", "--log-level", "error"],
                                       outputPath: FileManager.default.temporaryDirectory.appendingPathComponent("bench-gateway.log").path)
        defer { gateway.terminate() }
        try await waitUntil("gateway healthy", timeout: .seconds(20)) { (try? await httpGet(port: port, path: "/healthz"))?.status == 200 }

        var background: WebSocketClients?
        if idleDuring > 0 {
            let opened = Atomic<Int>(0)
            let pool = try WebSocketClients(name: "bench-background") { event in
                if case .opened = event { opened.add(1, ordering: .relaxed) }
            }
            for i in 0..<idleDuring {
                pool.connect(port: port, path: "/ws")
                if i % 500 == 499 { try await Task.sleep(for: .milliseconds(30)) }
            }
            try await waitUntil("\(idleDuring) background connections open", timeout: .seconds(120)) { opened.load(ordering: .relaxed) == idleDuring }
            report("holding \(idleDuring) idle connections during the fan-out")
            background = pool
        }
        try await fanOut(port: port, redis: redis)
        background?.stop()
        if idle > 0 { try await idleConnections(port: port, gatewayPID: gateway.pid) }
        await redis.close()
        server.stop()
    }

    /// `clients` connections over `cameras` cameras, `rate` results/s for `seconds`.
    private func fanOut(port: Int, redis: RedisClient) async throws {
        let opened = Atomic<Int>(0)
        let snapshots = Atomic<Int>(0)
        let deliveries = Atomic<Int>(0)
        // Publish time per (camera, offset): a fresh Redis numbers each camera's results 1, 2, 3…
        let sentAt = Mutex<[[UInt64]]>(Array(repeating: [0], count: cameras))
        // (publish time in ns, latency in ms) per delivery.
        // Reserved up front: growing it under the lock would stall the client threads.
        var reserved: [(at: UInt64, ms: Double)] = []
        reserved.reserveCapacity(rate * duration * clients / max(cameras, 1) + 1024)
        let latencies = Mutex(reserved)
        // Deliveries of results published before this moment (the warm-up) are not counted.
        let measureFrom = Atomic<UInt64>(.max)
        let handler: @Sendable (WebSocketClientEvent) -> Void = { event in
            switch event {
            case .opened: opened.add(1, ordering: .relaxed)
            case .message(_, let bytes):
                // {"type":"result",… or another type: only results are counted.
                guard bytes.count > 16, bytes[9] == UInt8(ascii: "r"), bytes[10] == UInt8(ascii: "e"), bytes[11] == UInt8(ascii: "s") else {
                    if bytes.count > 16, bytes[9] == UInt8(ascii: "s"), bytes[10] == UInt8(ascii: "n") { snapshots.add(1, ordering: .relaxed) }
                    return
                }
                let now = DispatchTime.now().uptimeNanoseconds
                guard let (camera, offset) = cameraAndOffset(bytes),
                      let at = sentAt.withLock({ camera < $0.count && offset < $0[camera].count ? $0[camera][offset] : nil }), at > 0,
                      at >= measureFrom.load(ordering: .relaxed) else { return }
                deliveries.add(1, ordering: .relaxed)
                latencies.withLock { $0.append((at, Double(now - at) / 1e6)) }
            case .closed, .failed: break
            }
        }
        let pools = try (0..<max(1, clientThreads)).map { try WebSocketClients(name: "bench-clients-\($0)", handler: handler) }
        defer { for pool in pools { pool.stop() } }
        var ids: [(WebSocketClients, WebSocketID)] = []
        for i in 0..<clients {
            let pool = pools[i % pools.count]
            ids.append((pool, pool.connect(port: port, path: "/ws")))
            if i % 200 == 199 { try await Task.sleep(for: .milliseconds(20)) }
        }
        try await waitUntil("\(clients) clients open", timeout: .seconds(60)) { opened.load(ordering: .relaxed) == clients }
        for (i, (pool, id)) in ids.enumerated() { pool.send(#"{"type":"subscribe","cameras":[\#(i % cameras)]}"#, to: id) }
        try await waitUntil("every client has its snapshot", timeout: .seconds(60)) { snapshots.load(ordering: .relaxed) == clients }

        // Publisher: the aggregator's planner and write transaction, a batch every 5 ms.
        let keys = KeySchema()
        let planner = WritePlanner(keys: keys, alertRule: AlertRule())
        let writer = WriteTransaction()
        var simulator = ResultSimulator(cameras: cameras, alertRatio: 0.2, seed: 3, runTag: "gw")
        let base = Int64(Date().timeIntervalSince1970 * 1000)
        let total = rate * duration
        let warmupTotal = rate * warmup
        let frames = (0..<(warmupTotal + total)).map { simulator.next(at: base + Int64($0)) }
        let averageSize = frames.reduce(0) { $0 + $1.assessment.count + $1.detection.count } / max(frames.count, 1)
        let tick = Duration.milliseconds(5)
        let perTick = max(1, rate / 200)
        let clock = ContinuousClock()
        let publishStart = clock.now
        var start = publishStart
        var index = 0
        var tickNumber = 0
        while index < frames.count {
            try await clock.sleep(until: publishStart + tick * tickNumber)
            tickNumber += 1
            if index >= warmupTotal, measureFrom.load(ordering: .relaxed) == .max {
                start = clock.now
                measureFrom.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
            }
            let batch = frames[index..<min(index + perTick, frames.count)]
            index += batch.count
            let valid = try batch.map { try AssessmentMessage(validating: $0.assessment) }
            let plan = planner.plan(valid, detections: batch.map(\.detection))
            // Timed when the transaction that publishes them is sent (after its reads; the
            // benchmark is the only writer, so there is exactly one such moment per batch).
            let cameraIds = batch.map(\.cameraId)
            _ = try await writer.apply(plan, on: redis) {
                let now = DispatchTime.now().uptimeNanoseconds
                sentAt.withLock { for camera in cameraIds { $0[camera].append(now) } }
            }
        }
        let publishSpan = seconds(clock.now - start)
        let expected = total * clients / cameras
        let drainDeadline = ContinuousClock.now + .seconds(30)
        while deliveries.load(ordering: .relaxed) < expected, ContinuousClock.now < drainDeadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let span = seconds(clock.now - start)
        let delivered = deliveries.load(ordering: .relaxed)
        let samples = latencies.withLock { $0 }
        let sorted = samples.map(\.ms).sorted()
        report("\(clients) clients over \(cameras) cameras, \(total) results (avg \(averageSize) B before merge) at \(rate)/s for \(String(format: "%.1f", publishSpan)) s")
        report(String(format: "deliveries: %d of %d expected, %.0f deliveries/s; publish → client receive p50 %.2f ms  p99 %.2f ms  max %.2f ms",
                      delivered, expected, Double(delivered) / span, percentile(sorted, 0.5), percentile(sorted, 0.99), sorted.last ?? 0))
        // Per second of publishing: tells steady tails from isolated stalls.
        if let first = samples.map(\.at).min() {
            var perSecond: [[Double]] = []
            for sample in samples {
                let second = Int((sample.at - first) / 1_000_000_000)
                while perSecond.count <= second { perSecond.append([]) }
                perSecond[second].append(sample.ms)
            }
            report("p99 per second of publishing (ms): " + perSecond.map { String(format: "%.1f", percentile($0.sorted(), 0.99)) }.joined(separator: " "))
        }
    }

    /// `camera` and `offset` from the head of a result frame: `{"type":"result","camera":7,"offset":12,…`.
    private func cameraAndOffset(_ bytes: [UInt8]) -> (Int, Int)? {
        let head = 26 // {"type":"result","camera":
        guard bytes.count > head + 12 else { return nil }
        var i = head
        var camera = 0
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 { camera = camera * 10 + Int(bytes[i] - 48); i += 1 }
        i += 10 // ,"offset":
        var offset = 0
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57 { offset = offset * 10 + Int(bytes[i] - 48); i += 1 }
        return (camera, offset)
    }

    /// Opens `idle` connections that only stay open; reports the gateway's memory per connection.
    private func idleConnections(port: Int, gatewayPID: Int32) async throws {
        let opened = Atomic<Int>(0)
        let failed = Atomic<Int>(0)
        let pool = try WebSocketClients(name: "bench-idle") { event in
            switch event {
            case .opened: opened.add(1, ordering: .relaxed)
            case .failed: failed.add(1, ordering: .relaxed)
            default: break
            }
        }
        defer { pool.stop() }
        try await Task.sleep(for: .milliseconds(500))
        let before = residentBytes(pid: gatewayPID) ?? 0
        for i in 0..<idle {
            pool.connect(port: port, path: "/ws")
            if i % 500 == 499 { try await Task.sleep(for: .milliseconds(30)) }
        }
        try await waitUntil("\(idle) idle connections open", timeout: .seconds(120)) { opened.load(ordering: .relaxed) + failed.load(ordering: .relaxed) >= idle }
        try await Task.sleep(for: .seconds(1))
        let after = residentBytes(pid: gatewayPID) ?? 0
        let held = opened.load(ordering: .relaxed)
        report(String(format: "idle connections held: %d (failed %d); gateway RSS %.1f MiB → %.1f MiB: %.1f KB per connection",
                      held, failed.load(ordering: .relaxed), Double(before) / 1_048_576, Double(after) / 1_048_576, Double(after - before) / Double(max(held, 1)) / 1000))
    }
}

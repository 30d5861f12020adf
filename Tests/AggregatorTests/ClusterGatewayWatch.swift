import Foundation
import Gateway
import Logging
import Testing
import TestSupport
import TrafficModel
import Websockets

/// A gateway on a cluster rig's Redis, and WebSocket clients watching cameras through it: what a
/// browser sees while the aggregator writes across slot moves and failovers.
final class ClusterGatewayWatch: Sendable {
    let gateway: GatewayService
    let clients: WebSocketTestClients

    /// `discovery`: how often the gateway scans for cameras the aggregator's announcements missed.
    init(_ rig: ClusterRig, readFromReplicas: Bool = false, discovery: Duration = .milliseconds(300)) async throws {
        var config = GatewayConfiguration()
        config.readFromReplicas = readFromReplicas
        config.port = try FreePort.find()
        config.redisURL = rig.cluster.url
        config.keys = KeySchema(namespace: rig.keys.namespace)
        config.probeInterval = .milliseconds(200)
        config.cameraDiscoveryInterval = discovery
        config.historyReadLimit = 10_000
        config.drainTimeout = .seconds(2)
        // A whole pre-produced stream arrives in seconds: these clients are about correctness,
        // not the slow-client limit.
        config.maximumQueuedBytes = 64 << 20
        let gateway = try GatewayService(configuration: config, logger: Logger(label: "test.gateway"))
        self.gateway = gateway
        try await gateway.checkRedis()
        clients = try WebSocketTestClients(port: gateway.port)
        try await waitUntil("the gateway is healthy (its probe came back through a shard channel)", timeout: .seconds(30)) { gateway.health.healthy }
    }

    /// A client watching `cameras` (nil: every camera, `"*"`), once its snapshot arrived.
    func watch(_ cameras: [Int]?) async throws -> WebSocketID { try await clients.watch(cameras) }

    func expectEveryResultOrGap(_ id: WebSocketID, camera: Int, total: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        try await clients.expectEveryResultOrGap(id, camera: camera, total: total, sourceLocation: sourceLocation)
    }

    /// Gap notices `id` got (a failover loses what the dead primary had not replicated).
    func gaps(_ id: WebSocketID) -> Int { clients.gaps(id) }

    func stop() async {
        clients.stop()
        await gateway.stop()
    }
}

/// What a browser saw of a camera, checked the same way for an in-process gateway and a process.
extension WebSocketTestClients {
    /// A client watching `cameras` (nil: every camera, `"*"`), once its snapshot arrived.
    func watch(_ cameras: [Int]?) async throws -> WebSocketID {
        let id = try await open()
        let list = cameras.map { "[" + $0.map(String.init).joined(separator: ",") + "]" } ?? #""*""#
        send(#"{"type":"subscribe","cameras":\#(list)}"#, to: id)
        _ = try await waitFor(id, type: "snapshot", timeout: .seconds(30))
        return id
    }

    func gaps(_ id: WebSocketID) -> Int { objects(id).filter { $0["type"] as? String == "gap" }.count }

    /// The offsets `id` got of `camera` in order, from its snapshot on, each marked with whether
    /// a `gap` notice for the camera came since the previous one.
    func stream(_ id: WebSocketID, camera: Int) -> (start: Int64, offsets: [(offset: Int64, afterGap: Bool)]) {
        var start: Int64 = 0
        var offsets: [(Int64, Bool)] = []
        var gap = false
        for object in objects(id) {
            switch object["type"] as? String {
            case "snapshot":
                for entry in object["cameras"] as? [[String: Any]] ?? [] where entry["camera"] as? Int == camera {
                    start = (entry["offset"] as? NSNumber)?.int64Value ?? 0
                }
            case "gap" where object["camera"] as? Int == camera:
                gap = true
            case "result", "results":
                let results = object["type"] as? String == "results" ? object["results"] as? [[String: Any]] ?? [] : [object]
                for result in results where result["camera"] as? Int == camera {
                    guard let offset = (result["offset"] as? NSNumber)?.int64Value else { continue }
                    offsets.append((offset, gap))
                    gap = false
                }
            default:
                break
            }
        }
        return (start, offsets)
    }

    /// `id` got every result of `camera` up to `total`, once and in order, or an explicit `gap`
    /// notice before each hole — never silence.
    func expectEveryResultOrGap(_ id: WebSocketID, camera: Int, total: Int, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        do {
            try await waitUntil("client \(id) got camera \(camera) up to \(total)", timeout: .seconds(60), every: .milliseconds(50)) {
                let got = stream(id, camera: camera)
                return (got.offsets.last?.offset ?? got.start) >= Int64(total)
            }
        } catch {
            let got = stream(id, camera: camera)
            let kinds = objects(id).compactMap { $0["type"] as? String }
            throw LocalServiceError("\(error): it got from \(got.start) the offsets \(got.offsets.map(\.offset).prefix(20))… (\(got.offsets.count)); messages: \(Dictionary(grouping: kinds, by: { $0 }).mapValues(\.count))")
        }
        let (start, offsets) = stream(id, camera: camera)
        var last = start
        var holes: [String] = []
        var repeats: [Int64] = []
        for (offset, afterGap) in offsets {
            if offset <= last { repeats.append(offset) }
            if offset > last + 1, !afterGap { holes.append("\(last + 1)...\(offset - 1)") }
            last = max(last, offset)
        }
        #expect(repeats.isEmpty, "camera \(camera): no result twice or out of order (\(repeats.prefix(5)))", sourceLocation: sourceLocation)
        #expect(holes.isEmpty, "camera \(camera): results missing without a gap notice: \(holes.prefix(5))", sourceLocation: sourceLocation)
        #expect(last == Int64(total), "camera \(camera): up to its newest result", sourceLocation: sourceLocation)
    }

}

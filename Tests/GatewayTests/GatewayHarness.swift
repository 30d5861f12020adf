import Foundation
import Logging
import RedisClient
import TestSupport
import TrafficModel
import Websockets
@testable import Aggregator
@testable import Gateway
import Simulation
import Synchronization

/// A real redis-server, an in-process gateway on a free port, WebSocket test clients, and a
/// publisher that writes results exactly as the aggregator does (its planner and write transaction).
final class GatewayHarness: Sendable {
    let redisServer: RedisServer
    let redis: RedisClient
    let keys: KeySchema
    let gateway: GatewayService
    let clients: WebSocketTestClients
    let historyLength: Int
    private let planner: WritePlanner
    private let sequence = Mutex(0)

    /// `sentinels`: the gateway and the publisher use that cluster (through its sentinels)
    /// instead of the harness's redis-server.
    init(historyLength: Int = 1_000, redisArguments: [String] = [], sentinels: SentinelCluster? = nil, configure: (inout GatewayConfiguration) -> Void = { _ in }) async throws {
        redisServer = try await RedisServer(extraArguments: redisArguments)
        redis = try await RedisClient.connect(configuration: sentinels?.configuration ?? redisServer.configuration)
        keys = KeySchema(namespace: uniqueName("gw") + ":")
        self.historyLength = historyLength
        // Results as large as a test makes them: the gateway must cope with what any publisher sends.
        planner = WritePlanner(keys: keys, alertRule: AlertRule(), maximumResultBytes: 64 << 20)
        var made: GatewayService?
        var lastError: (any Error)?
        for _ in 0..<5 {
            var config = GatewayConfiguration()
            config.port = try FreePort.find()
            config.redisURL = sentinels?.url ?? redisServer.url
            config.keys = keys
            config.probeInterval = .milliseconds(200)
            config.drainTimeout = .seconds(3)
            configure(&config)
            do {
                made = try GatewayService(configuration: config, logger: Logger(label: "test.gateway"))
                break
            } catch {
                lastError = error
            }
        }
        guard let made else { throw lastError ?? LocalServiceError("gateway did not start") }
        gateway = made
        clients = try WebSocketTestClients(port: made.port)
        // Ready means pub/sub delivers (the probe came back): clients then start from "redis up".
        try await waitUntil("gateway healthy (probe through pub/sub)") { made.health.healthy }
    }

    var port: Int { gateway.port }

    func shutdown() async {
        clients.stop()
        await gateway.stop()
        await redis.close()
        redisServer.stop()
    }

    /// Writes results for `camera` through the aggregator's script; returns their requestIds.
    @discardableResult
    func publish(camera: Int, count: Int = 1, level: String = "low", padding: Int = 0, objects: Int = 0, frameImage: [UInt8]? = nil) async throws -> [String] {
        var valid: [AssessmentMessage] = []
        var detections: [[UInt8]?] = []
        var ids: [String] = []
        for _ in 0..<count {
            let n = sequence.withLock { value -> Int in value += 1; return value }
            let id = "gw-\(camera)-\(n)"
            let seconds = 1_760_000_000 + n
            let extra = padding > 0 ? #","padding":"\#(String(repeating: "p", count: padding))""# : ""
            let json = #"{"requestId":"\#(id)","cameraId":\#(camera),"timestamp":"\#(ResultSimulator.rfc3339(Int64(seconds) * 1000))","riskAssessment":{"maxRiskLevel":"\#(level)","hasDangerousDriving":false},"llmModel":"test-vl"\#(extra)}"#
            valid.append(try AssessmentMessage(validating: Array(json.utf8), maximumBytes: 64 << 20))
            ids.append(id)
            if let frameImage {
                detections.append(Array(#"{"cameraId":\#(camera),"detectedObjects":[{"class":"car","bbox":[100,100,600,400]}],"trafficGroups":[],"frameWidth":1920,"frameHeight":1080,"frameImage":"\#(Data(frameImage).base64EncodedString())"}"#.utf8))
            } else if objects > 0 {
                let list = (0..<objects).map { #"{"class":"\#(["car", "truck", "bus", "person"][$0 % 4])","confidence":0.9,"bbox":[10,20,110,90]}"# }
                let groups = stride(from: 0, to: objects - 1, by: 2).map { #"{"groupId":\#($0),"objectIds":[\#($0),\#($0 + 1)],"relation":"following"}"# }
                detections.append(Array(#"{"cameraId":\#(camera),"detectedObjects":[\#(list.joined(separator: ","))],"trafficGroups":[\#(groups.joined(separator: ","))]}"#.utf8))
            } else {
                detections.append(nil)
            }
        }
        let plan = planner.plan(valid, detections: detections)
        var settings = WriteTransaction.Settings()
        settings.historyLength = historyLength
        _ = try await WriteTransaction(settings: settings).apply(plan, on: redis)
        return ids
    }

    /// The results a client received, in order: each `result` message, and each one inside a
    /// batched `results` message: (camera, offset, requestId).
    func results(_ id: WebSocketID) -> [(camera: Int, offset: Int64, requestId: String)] {
        clients.objects(id).flatMap { object -> [[String: Any]] in
            object["type"] as? String == "results" ? (object["results"] as? [[String: Any]] ?? []) : [object]
        }.compactMap { object in
            guard object["type"] as? String == "result", let camera = object["camera"] as? Int,
                  let offset = (object["offset"] as? NSNumber)?.int64Value,
                  let result = object["result"] as? [String: Any], let requestId = result["requestId"] as? String else { return nil }
            return (camera, offset, requestId)
        }
    }

    /// The message types a client received, in order.
    func types(_ id: WebSocketID) -> [String] {
        clients.objects(id).compactMap { $0["type"] as? String }
    }

    func waitForResults(_ id: WebSocketID, count: Int, timeout: Duration = .seconds(10)) async throws {
        do {
            try await waitUntil("client \(id) has \(count) results", timeout: timeout) { results(id).count >= count }
        } catch {
            let received = types(id)
            throw LocalServiceError("\(error); it received \(received.count) messages, the last ones: \(received.suffix(8)); open: \(clients.isOpen(id)), close: \(String(describing: clients.closeInfo(id))), failure: \(clients.failure(id) ?? "none")")
        }
    }

    func waitHealthy() async throws {
        try await waitUntil("gateway healthy (probe through pub/sub)") { gateway.health.healthy }
    }
}

import Foundation
import RedisClient
import TrafficModel
public import Websockets

/// The HTTP side of the gateway: dashboard, API, health and metrics (service thread).
extension GatewayService {
    public func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let path = request.path
        switch path {
        case "/", "/index.html":
            responder.respond(HTTPResponse(contentType: "text/html; charset=utf-8", body: DashboardPage.html, headers: [("cache-control", "no-cache")]))
        case "/healthz":
            let health = self.health
            responder.respond(.json(health.detail, status: health.healthy ? 200 : 503))
        case "/metrics":
            responder.respond(HTTPResponse(contentType: "text/plain; version=0.0.4", body: metrics.render()))
        case "/api/cameras":
            guard let permission = authorizeAPI(request, responder) else { return }
            listCameras { [self] list in
                guard let list else { return responder.respond(.error(503, "Redis unavailable")) }
                let visible = list.filter(permission.allows)
                latestResults(visible) { entries in
                    guard let entries else { return responder.respond(.error(503, "Redis unavailable")) }
                    responder.respond(.json("[" + entries.compactMap(Self.summary).joined(separator: ",") + "]"))
                }
            }
        default:
            routeCamera(request, responder)
        }
    }

    private func routeCamera(_ request: HTTPRequest, _ responder: HTTPResponder) {
        let parts = request.path.split(separator: "/", omittingEmptySubsequences: false)
        // ["", "api", "cameras", "<id>", "latest"|"alerts"] or [..., "<id>", "frames", "<requestId>"]
        let isFrame = parts.count == 6 && parts[4] == "frames"
        guard parts.count == 5 || isFrame, parts[1] == "api", parts[2] == "cameras", isFrame || parts[4] == "latest" || parts[4] == "alerts" else {
            return responder.respond(.error(404, "no such endpoint: \(request.path.prefix(200))"))
        }
        guard let camera = CameraID.parse(parts[3]) else {
            return responder.respond(.error(400, "'\(parts[3].prefix(32))' is not a camera id (\(CameraID.rangeDescription))"))
        }
        guard let permission = authorizeAPI(request, responder) else { return }
        guard permission.allows(camera) else { return responder.respond(.error(403, "not allowed to watch camera \(camera)")) }
        if isFrame {
            return serveFrame(camera: camera, requestId: String(parts[5]), responder)
        }
        if parts[4] == "latest" {
            latestResults([camera]) { entries in
                guard let entries else { return responder.respond(.error(503, "Redis unavailable")) }
                if let result = entries.first?.latest {
                    responder.respond(HTTPResponse(contentType: "application/json", body: result.payload, headers: [("cache-control", "no-store")]))
                } else {
                    responder.respond(.error(404, "camera \(camera) has no latest result"))
                }
            }
            return
        }
        var limit = 20
        if let text = request.query["limit"] {
            guard let value = Int(text), (1...1000).contains(value) else {
                return responder.respond(.error(400, "limit must be an integer from 1 to 1000, got '\(text.prefix(16))'"))
            }
            limit = value
        }
        let state = self.state
        Task {
            do {
                let (alerts, known) = try await state.alerts(camera: camera, limit: limit)
                guard known || !alerts.isEmpty else { return responder.respond(.error(404, "camera \(camera) is unknown (no results stored)")) }
                var body = Array(#"{"camera":\#(camera),"alerts":["#.utf8)
                for (index, alert) in alerts.enumerated() {
                    if index > 0 { body.append(UInt8(ascii: ",")) }
                    body += alert
                }
                body += Array("]}".utf8)
                responder.respond(HTTPResponse(contentType: "application/json", body: body, headers: [("cache-control", "no-store")]))
            } catch let error as RedisError {
                responder.respond(.error(503, "Redis unavailable: \(error.message)"))
            } catch {
                responder.respond(.error(503, "Redis unavailable"))
            }
        }
    }

    /// `GET /api/cameras/<id>/frames/<requestId>`: a result's frame image, as stored by the
    /// aggregator. The media type comes from the image's own first bytes; anything that is not a
    /// raster image is sent as a download, never rendered.
    private func serveFrame(camera: Int, requestId: String, _ responder: HTTPResponder) {
        guard AssessmentMessage.isValidRequestId(requestId) else {
            return responder.respond(.error(400, "'\(requestId.prefix(32))' is not a request id (1–128 characters of [A-Za-z0-9_:.-])"))
        }
        let admitted = framesInFlight.withLock { count -> Bool in
            guard count < Self.maximumFrameFetches else { return false }
            count += 1
            return true
        }
        guard admitted else {
            var busy = HTTPResponse.error(503, "too many frame requests at once; retry")
            busy.headers.append(("retry-after", "1"))
            return responder.respond(busy)
        }
        let frames = RedisState(redis: frameRedis, keys: configuration.keys, historyReadLimit: configuration.historyReadLimit)
        Task { [self] in
            defer { framesInFlight.withLock { $0 -= 1 } }
            do throws(RedisError) {
                guard let image = try await frames.frame(camera: camera, requestId: requestId) else {
                    return responder.respond(.error(404, "no frame \(requestId) for camera \(camera) (none stored, or expired)"))
                }
                let type = FrameImage.mediaType(of: image)
                var headers: [(name: String, value: String)] = [("cache-control", "private, max-age=300"), ("x-content-type-options", "nosniff")]
                if !type.hasPrefix("image/") { headers.append(("content-disposition", "attachment")) }
                responder.respond(HTTPResponse(contentType: type, body: image, headers: headers))
            } catch {
                responder.respond(.error(503, "Redis unavailable: \(error.message)"))
            }
        }
    }

    private func authorizeAPI(_ request: HTTPRequest, _ responder: HTTPResponder) -> CameraPermission? {
        switch configuration.access.authorize(request) {
        case .success(let permission): return permission
        case .failure(let denied):
            responder.respond(.error(denied.status, denied.reason))
            return nil
        }
    }

    /// One row of `/api/cameras`.
    static func summary(_ entry: SnapshotEntry) -> String? {
        guard let result = entry.latest,
              let object = try? JSONDecoder().decode(ResultSummaryFields.self, from: Data(result.payload)) else { return nil }
        let assessment = object.riskAssessment?.value
        var fields = [#""camera":\#(entry.camera)"#]
        if let timestamp = object.timestamp?.value { fields.append(#""timestamp":\#(JSONText.quoted(timestamp))"#) }
        if let level = assessment?.maxRiskLevel?.value { fields.append(#""maxRiskLevel":\#(JSONText.quoted(level))"#) }
        if let dangerous = assessment?.hasDangerousDriving?.value { fields.append(#""hasDangerousDriving":\#(dangerous)"#) }
        return "{" + fields.joined(separator: ",") + (result.position.map(ServerMessage.positionMembers) ?? "") + "}"
    }

    // MARK: Latest lookups with single flight (service thread)

    /// The latest result of each camera, in order, for the HTTP API: from the cache, else from
    /// Redis with at most one read in flight per camera however many ask. `done` runs on the
    /// service thread, with nil when Redis could not be read.
    func latestResults(_ cameras: [Int], done: @escaping ([SnapshotEntry]?) -> Void) {
        let assembly = SnapshotAssembly(cameras: cameras, done: done)
        var toFetch: [Int] = []
        for camera in cameras {
            if let hit = cache.lookup(camera) {
                assembly.fill(camera, .some(hit))
                continue
            }
            if inflightLatest[camera] != nil {
                inflightLatest[camera]!.append { assembly.fill(camera, $0) }
            } else {
                inflightLatest[camera] = [{ assembly.fill(camera, $0) }]
                toFetch.append(camera)
            }
        }
        assembly.finishIfComplete()
        guard !toFetch.isEmpty else { return }
        let fetching = toFetch
        let state = self.state
        Task { [self] in
            let outcome: Result<[Int: LiveResult], RedisError>
            do throws(RedisError) {
                outcome = .success(try await state.latest(fetching))
            } catch {
                logger.warning("latest read failed", metadata: ["error": "\(error)"])
                outcome = .failure(error)
            }
            server.execute { [self] in
                let found = try? outcome.get()
                for camera in fetching {
                    // Read without the subscription barrier: never trusted as live-followed.
                    if let found { cache.store(camera, found[camera], following: false) }
                    let answer: LiveResult?? = found.map { $0[camera] }
                    for waiter in inflightLatest.removeValue(forKey: camera) ?? [] { waiter(answer) }
                }
            }
        }
    }

    /// Cameras with a latest result (Redis SCAN plus followed cameras), single flight.
    func listCameras(done: @escaping ([Int]?) -> Void) {
        if inflightCameraList != nil {
            inflightCameraList!.append(done)
            return
        }
        inflightCameraList = [done]
        let state = self.state
        Task { [self] in
            let list = try? await state.camerasWithLatest()
            server.execute { [self] in
                let merged = list.map { Array(Set($0).union(cache.followedCameras)).sorted() }
                for waiter in inflightCameraList ?? [] { waiter(merged) }
                inflightCameraList = nil
            }
        }
    }
}

/// Collects the answers of one multi-camera latest lookup (service thread only).
final class SnapshotAssembly {
    private let cameras: [Int]
    private var results: [Int: LiveResult?] = [:]
    private var failed = false
    private var done: (([SnapshotEntry]?) -> Void)?

    init(cameras: [Int], done: @escaping ([SnapshotEntry]?) -> Void) {
        self.cameras = cameras
        self.done = done
    }

    /// One camera's answer: `.some(result)` (nil result: none stored), or nil when the read failed.
    func fill(_ camera: Int, _ answer: LiveResult??) {
        if let answer { results[camera] = .some(answer) } else { failed = true }
        finishIfComplete()
    }

    func finishIfComplete() {
        guard let done else { return }
        if failed {
            self.done = nil
            done(nil)
            return
        }
        guard results.count >= Set(cameras).count else { return }
        self.done = nil
        done(cameras.map { SnapshotEntry(camera: $0, latest: results[$0] ?? nil) })
    }
}

/// The few fields of a result that `/api/cameras` shows (each read on its own; a wrong type
/// reads as absent).
struct ResultSummaryFields: Decodable {
    struct Assessment: Decodable {
        var maxRiskLevel: Lenient<String>?
        var hasDangerousDriving: Lenient<Bool>?
    }

    var timestamp: Lenient<String>?
    var riskAssessment: Lenient<Assessment>?
}

import Foundation
import RedisClient
import TrafficModel
import Websockets

/// The HTTP side of the gateway: dashboard, API, health and metrics.
extension GatewayCore {
    func handle(_ request: HTTPRequest, responder: HTTPResponder) {
        let path = request.path
        switch path {
        case "/", "/index.html":
            responder.respond(HTTPResponse(contentType: "text/html; charset=utf-8", body: DashboardPage.html, headers: [("cache-control", "no-cache")]))
        case "/healthz":
            let health = probe.health
            responder.respond(.json(health.detail, status: health.healthy ? 200 : 503))
        case "/metrics":
            responder.respond(HTTPResponse(contentType: "text/plain; version=0.0.4", body: metrics.render()))
        case "/api/cameras":
            guard let permission = authorizeAPI(request, responder) else { return }
            Task {
                guard let list = await listCameras() else { return responder.respond(.error(503, "Redis unavailable")) }
                guard let entries = await latestResults(list.filter(permission.allows)) else { return responder.respond(.error(503, "Redis unavailable")) }
                responder.respond(.json("[" + entries.compactMap(Self.summary).joined(separator: ",") + "]"))
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
            Task {
                guard let entries = await latestResults([camera]) else { return responder.respond(.error(503, "Redis unavailable")) }
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
        guard framesInFlight < Self.maximumFrameFetches else {
            var busy = HTTPResponse.error(503, "too many frame requests at once; retry")
            busy.headers.append(("retry-after", "1"))
            return responder.respond(busy)
        }
        framesInFlight += 1
        let frames = self.frames
        Task {
            defer { framesInFlight -= 1 }
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
              let object = try? JSONDecoder().decode(ResultSummaryFields.self, from: Data(result.payload)) else { return nil } // try?: a stored result that is not a JSON object has no summary; its camera is left out
        let assessment = object.riskAssessment?.value
        var fields = [#""camera":\#(entry.camera)"#]
        if let timestamp = object.timestamp?.value { fields.append(#""timestamp":\#(JSONText.quoted(timestamp))"#) }
        if let level = assessment?.maxRiskLevel?.value { fields.append(#""maxRiskLevel":\#(JSONText.quoted(level))"#) }
        if let dangerous = assessment?.hasDangerousDriving?.value { fields.append(#""hasDangerousDriving":\#(dangerous)"#) }
        return "{" + fields.joined(separator: ",") + (result.position.map(ServerMessage.positionMembers) ?? "") + "}"
    }

    // MARK: Latest lookups with single flight

    /// The latest result of each camera, in order, for the HTTP API: from the cache, else from
    /// Redis with at most one read in flight per camera however many ask; nil when Redis could
    /// not be read.
    func latestResults(_ cameras: [Int]) async -> [SnapshotEntry]? {
        var found: [Int: LiveResult?] = [:]
        var waits: [(camera: Int, read: Task<[Int: LiveResult]?, Never>)] = []
        var toFetch: [Int] = []
        for camera in Set(cameras) {
            if let hit = cache.lookup(camera) {
                found[camera] = .some(hit)
            } else if let read = inflightLatest[camera] {
                waits.append((camera, read))
            } else {
                toFetch.append(camera)
            }
        }
        if !toFetch.isEmpty {
            let (state, logger, fetching) = (self.state, self.logger, toFetch)
            let read = Task { () -> [Int: LiveResult]? in
                let outcome: [Int: LiveResult]?
                do throws(RedisError) {
                    outcome = try await state.latest(fetching)
                } catch {
                    logger.warning("latest read failed", metadata: ["error": "\(error)"])
                    outcome = nil
                }
                for camera in fetching {
                    // Read without the subscription barrier: never trusted as live-followed.
                    if let outcome { cache.store(camera, outcome[camera], following: false) }
                    inflightLatest[camera] = nil
                }
                return outcome
            }
            for camera in fetching {
                inflightLatest[camera] = read
                waits.append((camera, read))
            }
        }
        for (camera, read) in waits {
            guard let values = await read.value else { return nil }
            found[camera] = .some(values[camera])
        }
        return cameras.map { SnapshotEntry(camera: $0, latest: found[$0] ?? nil) }
    }

    /// Cameras with a latest result (Redis SCAN plus followed cameras), single flight; nil when
    /// Redis could not be read.
    func listCameras() async -> [Int]? {
        let read: Task<[Int]?, Never>
        if let inflight = inflightCameraList {
            read = inflight
        } else {
            let (state, logger) = (self.state, self.logger)
            read = Task {
                let list: [Int]?
                do throws(RedisError) {
                    list = try await state.camerasWithLatest()
                } catch {
                    logger.warning("camera list read failed", metadata: ["error": "\(error)"])
                    list = nil
                }
                inflightCameraList = nil
                return list.map { Array(Set($0).union(cache.followedCameras)).sorted() }
            }
            inflightCameraList = read
        }
        return await read.value
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

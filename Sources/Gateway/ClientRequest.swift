import Foundation
public import TrafficModel

/// A frame a client sent, decoded. The wire format is in docs/websocket-protocol.md.
public enum ClientRequest: Sendable, Equatable {
    /// `batch`: the client asks for results batched (a `results` frame holding several when
    /// more than one is queued for it); it stays so for the connection.
    case subscribe(CameraSelection, since: [Int: ResultPosition], batch: Bool = false)
    case unsubscribe(CameraSelection)
    case ping

    /// Cameras one request may name.
    public static let maximumCameras = 1_000

    /// Decodes a text frame (one Codable model of the control messages); the error names the
    /// field at fault.
    public static func parse(_ bytes: [UInt8]) -> Result<ClientRequest, ClientRequestError> {
        let frame: ClientFrame
        do {
            frame = try JSONDecoder().decode(ClientFrame.self, from: Data(bytes))
        } catch {
            return .failure(.init(reason: "malformed_json", detail: "a frame must be one JSON object"))
        }
        guard let type = frame.type else {
            return .failure(.init(reason: "missing_field", detail: "field 'type' (string) is required"))
        }
        switch type {
        case "ping":
            return .success(.ping)
        case "subscribe", "unsubscribe":
            let selection: CameraSelection
            switch frame.cameras ?? .failure(CameraSelectionField.invalid) {
            case .success(let s): selection = s
            case .failure(let error): return .failure(error)
            }
            if type == "unsubscribe" { return .success(.unsubscribe(selection)) }
            let batch: Bool
            switch frame.batch {
            case .success(let value): batch = value
            case .failure(let error): return .failure(error)
            }
            return frame.since.map { .subscribe(selection, since: $0, batch: batch) }
        default:
            return .failure(.init(reason: "unknown_type", detail: "type '\(type.prefix(40))' is not one of subscribe, unsubscribe, ping"))
        }
    }
}

/// The control message as it arrives: every field read on its own, so one that is wrong is
/// reported by name instead of failing the whole frame.
struct ClientFrame: Decodable {
    /// nil when missing or not a string.
    var type: String?
    /// nil when missing.
    var cameras: Result<CameraSelection, ClientRequestError>?
    var since: Result<[Int: ResultPosition], ClientRequestError> = .success([:])
    var batch: Result<Bool, ClientRequestError> = .success(false)

    enum Keys: String, CodingKey { case type, cameras, since, batch }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: Keys.self) // not an object: malformed
        type = container.field(.type, as: String.self).value
        switch container.field(.cameras, as: CameraSelectionField.self) {
        case .absent: cameras = nil
        case .value(let field): cameras = field.value
        case .null, .malformed: cameras = .failure(CameraSelectionField.invalid)
        }
        switch container.field(.since, as: SinceField.self) {
        case .absent, .null: break
        case .value(let field): since = field.value
        case .malformed: since = .failure(.init(reason: "invalid_field", detail: "field 'since' must be an object {\"<camera>\": {\"offset\": n, \"epoch\": \"…\"}}"))
        }
        switch container.field(.batch, as: Bool.self) {
        case .absent: break
        case .value(let value): batch = .success(value)
        case .null, .malformed: batch = .failure(.init(reason: "invalid_field", detail: "field 'batch' must be true or false"))
        }
    }
}

/// `"*"` or an array of camera ids; the outcome names the element at fault.
struct CameraSelectionField: Decodable {
    var value: Result<CameraSelection, ClientRequestError>

    static let invalid = ClientRequestError(reason: "invalid_field", detail: "field 'cameras' must be an array of camera ids or \"*\"")

    init(from decoder: any Decoder) throws {
        if let text = try decoder.singleValueContainer().probe(String.self) {
            value = text == "*" ? .success(.all) : .failure(Self.invalid)
            return
        }
        var list = try decoder.unkeyedContainer()
        if let count = list.count, count > ClientRequest.maximumCameras {
            value = .failure(.init(reason: "invalid_field", detail: "field 'cameras' names \(count) cameras; at most \(ClientRequest.maximumCameras)"))
            return
        }
        var cameras: [Int] = []
        while !list.isAtEnd {
            let index = list.currentIndex
            do {
                cameras.append(try list.decode(CameraIDValue.self).id)
            } catch {
                value = .failure(.init(reason: "invalid_field", detail: "cameras[\(index)] is not a camera id (integer ≥ 0)"))
                return
            }
        }
        value = .success(.cameras(cameras))
    }
}

/// One camera id: an integer ≥ 0, or a string of one (never a boolean, which JSON keeps apart).
struct CameraIDValue: Decodable {
    var id: Int

    init(from decoder: any Decoder) throws {
        let single = try decoder.singleValueContainer()
        if let integer = single.probe(Int.self), integer >= 0 {
            id = integer
        } else if let number = single.probe(Double.self), let integer = Int(exactly: number), integer >= 0 {
            id = integer
        } else if let text = single.probe(String.self), let parsed = CameraID.parse(text) {
            id = parsed
        } else {
            throw DecodingError.dataCorruptedError(in: single, debugDescription: "not a camera id")
        }
    }
}

/// `{"<camera>": {"offset": n, "epoch": "…"}}`: where each camera's client left off.
struct SinceField: Decodable {
    var value: Result<[Int: ResultPosition], ClientRequestError>

    struct Position: Decodable {
        var offset: Int64?
        var epoch: String?

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: Keys.self)
            offset = container.field(.offset, as: Int64.self).value
                ?? container.field(.offset, as: Double.self).value.flatMap { Int64(exactly: $0) }
            epoch = container.field(.epoch, as: String.self).value
        }

        enum Keys: String, CodingKey { case offset, epoch }
    }

    init(from decoder: any Decoder) throws {
        let entries = try decoder.singleValueContainer().decode([String: Lenient<Position>].self)
        var since: [Int: ResultPosition] = [:]
        for (key, entry) in entries {
            guard let camera = CameraID.parse(key) else {
                value = .failure(.init(reason: "invalid_field", detail: "since key '\(key.prefix(20))' is not a camera id"))
                return
            }
            guard let position = entry.value, let offset = position.offset, offset >= 0,
                  let epoch = position.epoch, !epoch.isEmpty, epoch.utf8.count <= 64 else {
                value = .failure(.init(reason: "invalid_field", detail: "since.\(camera) must be {\"offset\": integer ≥ 0, \"epoch\": non-empty string}"))
                return
            }
            since[camera] = ResultPosition(offset: offset, epoch: epoch)
        }
        value = .success(since)
    }
}

/// Why a client frame was refused; sent back as an `error` message.
public struct ClientRequestError: Error, Sendable, Equatable {
    public var reason: String
    public var detail: String
}

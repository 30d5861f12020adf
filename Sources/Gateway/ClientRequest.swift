import Foundation
public import TrafficModel

/// A frame a client sent, decoded. The wire format is in docs/websocket-protocol.md.
public enum ClientRequest: Sendable, Equatable {
    case subscribe(CameraSelection, since: [Int: ResultPosition])
    case unsubscribe(CameraSelection)
    case ping

    /// Cameras one request may name.
    public static let maximumCameras = 1_000

    /// Decodes a text frame; the error names the field at fault.
    public static func parse(_ bytes: [UInt8]) -> Result<ClientRequest, ClientRequestError> {
        guard let object = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else {
            return .failure(.init(reason: "malformed_json", detail: "a frame must be one JSON object"))
        }
        guard let type = object["type"] as? String else {
            return .failure(.init(reason: "missing_field", detail: "field 'type' (string) is required"))
        }
        switch type {
        case "ping":
            return .success(.ping)
        case "subscribe", "unsubscribe":
            let selection: CameraSelection
            switch parseSelection(object["cameras"]) {
            case .success(let s): selection = s
            case .failure(let error): return .failure(error)
            }
            if type == "unsubscribe" { return .success(.unsubscribe(selection)) }
            switch parseSince(object["since"]) {
            case .success(let since): return .success(.subscribe(selection, since: since))
            case .failure(let error): return .failure(error)
            }
        default:
            return .failure(.init(reason: "unknown_type", detail: "type '\(type.prefix(40))' is not one of subscribe, unsubscribe, ping"))
        }
    }

    static func parseSelection(_ value: Any?) -> Result<CameraSelection, ClientRequestError> {
        if let text = value as? String, text == "*" { return .success(.all) }
        guard let list = value as? [Any] else {
            return .failure(.init(reason: "invalid_field", detail: "field 'cameras' must be an array of camera ids or \"*\""))
        }
        guard list.count <= maximumCameras else {
            return .failure(.init(reason: "invalid_field", detail: "field 'cameras' names \(list.count) cameras; at most \(maximumCameras)"))
        }
        var cameras: [Int] = []
        for (index, item) in list.enumerated() {
            guard let camera = cameraID(item) else {
                return .failure(.init(reason: "invalid_field", detail: "cameras[\(index)] is not a camera id (integer ≥ 0)"))
            }
            cameras.append(camera)
        }
        return .success(.cameras(cameras))
    }

    static func parseSince(_ value: Any?) -> Result<[Int: ResultPosition], ClientRequestError> {
        guard let value, !(value is NSNull) else { return .success([:]) }
        guard let object = value as? [String: Any] else {
            return .failure(.init(reason: "invalid_field", detail: "field 'since' must be an object {\"<camera>\": {\"offset\": n, \"epoch\": \"…\"}}"))
        }
        var since: [Int: ResultPosition] = [:]
        for (key, entry) in object {
            guard let camera = CameraID.parse(key) else {
                return .failure(.init(reason: "invalid_field", detail: "since key '\(key.prefix(20))' is not a camera id"))
            }
            guard let position = entry as? [String: Any],
                  let offset = (position["offset"] as? NSNumber).flatMap({ Int64(exactly: $0.doubleValue) }), offset >= 0,
                  let epoch = position["epoch"] as? String, !epoch.isEmpty, epoch.utf8.count <= 64 else {
                return .failure(.init(reason: "invalid_field", detail: "since.\(camera) must be {\"offset\": integer ≥ 0, \"epoch\": non-empty string}"))
            }
            since[camera] = ResultPosition(offset: offset, epoch: epoch)
        }
        return .success(since)
    }

    static func cameraID(_ value: Any) -> Int? {
        // JSON booleans arrive as NSNumber too; their objCType is "c".
        if let number = value as? NSNumber, String(cString: number.objCType) != "c" {
            guard let integer = Int(exactly: number.doubleValue), integer >= 0 else { return nil }
            return integer
        }
        if let text = value as? String { return CameraID.parse(text) }
        return nil
    }
}

/// Why a client frame was refused; sent back as an `error` message.
public struct ClientRequestError: Error, Sendable, Equatable {
    public var reason: String
    public var detail: String
}

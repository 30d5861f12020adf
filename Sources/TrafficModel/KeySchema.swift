/// The Redis key and channel names of SPEC §3, under one namespace prefix.
///
/// With namespace `prod:`, camera 7's channel is `prod:camera:7`. Camera ids are always written
/// in canonical decimal form. Besides the public keys, the aggregator keeps its own, every one
/// under the camera's id: `camera:<id>:latest_ts` (the timestamp of `latest`, so it never goes
/// back; same TTL), `camera:<id>:alerted` (a capped list of the requestIds that alerted last, so
/// a requestId produced twice pushes one alert), `camera:<id>:position` (hash: `offset`, the
/// last position handed out; `epoch`, which changes whenever the counter starts over;
/// `kafka_partition` and `kafka_offset`, the Kafka message applied last, so a redelivery changes
/// nothing) and `camera:<id>:history` (a stream of the last published results, entry id
/// `<offset>-0`). Versions before the applied offset wrote `alerted:<requestId>` markers; they
/// are only read (on upgrade) and left to expire.
///
/// In cluster mode (`hashTagged`, with a `redis-cluster://` URL) a camera's id is its names' hash
/// tag — `camera:{7}`, `camera:{7}:latest`, `alerts:{7}`, `frame:{7}:<requestId>` — so everything
/// one camera's write touches lives in one slot of one primary. `detection:<requestId>` is named
/// by the camera pipeline and stays as it is.
public struct KeySchema: Sendable, Equatable {
    public var namespace: String
    /// Cluster mode: every camera name carries the camera's id as hash tag `{<id>}`.
    public var hashTagged: Bool

    public init(namespace: String = "", hashTagged: Bool = false) {
        self.namespace = namespace
        self.hashTagged = hashTagged
    }

    /// Why `namespace` cannot be used in cluster mode, nil when it can: a brace in it would
    /// become the hash tag of every name, putting all cameras on one primary.
    public static func clusterProblem(namespace: String) -> String? {
        namespace.contains("{") || namespace.contains("}")
            ? "namespace '\(namespace)' contains '{' or '}': in cluster mode the camera id is each name's hash tag, and a brace in the prefix would put every camera in one slot"
            : nil
    }

    /// The camera id as its names carry it: `7`, or `{7}` in cluster mode.
    public func tag(_ camera: Int) -> String { hashTagged ? "{\(camera)}" : String(camera) }

    public func detection(_ requestId: String) -> String { "\(namespace)detection:\(requestId)" }
    public func cameraChannel(_ camera: Int) -> String { "\(namespace)camera:\(tag(camera))" }
    public func latest(_ camera: Int) -> String { "\(namespace)camera:\(tag(camera)):latest" }
    public func latestTimestamp(_ camera: Int) -> String { "\(namespace)camera:\(tag(camera)):latest_ts" }
    public func position(_ camera: Int) -> String { "\(namespace)camera:\(tag(camera)):position" }
    public func history(_ camera: Int) -> String { "\(namespace)camera:\(tag(camera)):history" }
    public func alerts(_ camera: Int) -> String { "\(namespace)alerts:\(tag(camera))" }
    /// The requestIds that alerted last on the camera (a capped list, newest first).
    public func alerted(camera: Int) -> String { "\(namespace)camera:\(tag(camera)):alerted" }
    /// The per-alert marker of versions before the applied offset (7-day TTL): read on upgrade
    /// only, never written (and never in cluster mode, which such versions did not have).
    public func legacyAlertMarker(_ requestId: String) -> String { "\(namespace)alerted:\(requestId)" }
    /// The frame image of one result, stored apart from the result (same TTL as `latest`).
    public func frame(camera: Int, requestId: String) -> String { "\(namespace)frame:\(tag(camera)):\(requestId)" }
    /// The PSUBSCRIBE pattern matching every camera channel (not the `:latest` keys, which are
    /// not channels); in cluster mode a SCAN pattern only (shard channels have no pattern form).
    public var allCamerasPattern: String { "\(namespace)camera:*" }

    /// The classic pub/sub channel on which the aggregator announces, in cluster mode, a camera's
    /// first result (its id): shard channels have no pattern form, so gateways watching every
    /// camera learn of new ones here rather than by scanning (a cluster carries `PUBLISH` to every
    /// node; it is sent once per camera and epoch).
    public var camerasAnnounced: String { "\(namespace)cameras:new" }

    /// The message announcing `camera` on `camerasAnnounced`: its id in decimal.
    public func announcement(of camera: Int) -> [UInt8] { Array(String(camera).utf8) }

    /// The camera a message announces, nil when it is not an announcement of this namespace.
    public func announcedCamera(channel: String, payload: [UInt8]) -> Int? {
        channel == camerasAnnounced ? CameraID.parse(String(decoding: payload, as: UTF8.self)) : nil
    }

    /// The SCAN pattern matching every camera's position hash: every camera that ever had a
    /// result (how cameras are found on a cluster, whose shard channels have no pattern form).
    public var allPositionsPattern: String { hashTagged ? "\(namespace)camera:{*}:position" : "\(namespace)camera:*:position" }

    /// The camera id of a channel name of this namespace, or nil.
    public func camera(fromChannel channel: String) -> Int? {
        let prefix = "\(namespace)camera:"
        guard channel.hasPrefix(prefix) else { return nil }
        return untagged(channel.dropFirst(prefix.count))
    }

    /// The camera id of a `camera:<id>:<suffix>` key of this namespace (`suffix` e.g. `latest`),
    /// or nil.
    public func camera(fromKey key: String, suffix: String) -> Int? {
        let prefix = "\(namespace)camera:"
        let tail = ":" + suffix
        guard key.hasPrefix(prefix), key.hasSuffix(tail), key.count > prefix.count + tail.count else { return nil }
        return untagged(key.dropFirst(prefix.count).dropLast(tail.count))
    }

    /// The camera id of an `alerts:<id>` key of this namespace, or nil.
    public func camera(fromAlertsKey key: String) -> Int? {
        let prefix = "\(namespace)alerts:"
        guard key.hasPrefix(prefix) else { return nil }
        return untagged(key.dropFirst(prefix.count))
    }

    /// The id in `7` or, in cluster mode, `{7}`.
    private func untagged(_ text: Substring) -> Int? {
        if hashTagged {
            guard text.hasPrefix("{"), text.hasSuffix("}"), text.count > 2 else { return nil }
            return CameraID.parse(text.dropFirst().dropLast())
        }
        return CameraID.parse(text)
    }
}

/// Camera ids: integers from 0 to 999,999,999,999,999,999 (at most 18 decimal digits, so every
/// id fits a signed 64-bit integer), written in canonical decimal.
public enum CameraID {
    /// The accepted range, for error messages.
    public static let rangeDescription = "an integer from 0 to 999999999999999999 (at most 18 digits)"

    /// Parses a decimal id (leading zeros allowed on input, `007` → 7); nil when not an id.
    public static func parse<S: StringProtocol>(_ text: S) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 18, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return nil }
        return Int(text)
    }
}

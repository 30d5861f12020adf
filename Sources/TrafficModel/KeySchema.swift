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
public struct KeySchema: Sendable, Equatable {
    public var namespace: String

    public init(namespace: String = "") {
        self.namespace = namespace
    }

    public func detection(_ requestId: String) -> String { "\(namespace)detection:\(requestId)" }
    public func cameraChannel(_ camera: Int) -> String { "\(namespace)camera:\(camera)" }
    public func latest(_ camera: Int) -> String { "\(namespace)camera:\(camera):latest" }
    public func latestTimestamp(_ camera: Int) -> String { "\(namespace)camera:\(camera):latest_ts" }
    public func position(_ camera: Int) -> String { "\(namespace)camera:\(camera):position" }
    public func history(_ camera: Int) -> String { "\(namespace)camera:\(camera):history" }
    public func alerts(_ camera: Int) -> String { "\(namespace)alerts:\(camera)" }
    /// The requestIds that alerted last on the camera (a capped list, newest first).
    public func alerted(camera: Int) -> String { "\(namespace)camera:\(camera):alerted" }
    /// The per-alert marker of versions before the applied offset (7-day TTL): read on upgrade
    /// only, never written.
    public func legacyAlertMarker(_ requestId: String) -> String { "\(namespace)alerted:\(requestId)" }
    /// The frame image of one result, stored apart from the result (same TTL as `latest`).
    public func frame(camera: Int, requestId: String) -> String { "\(namespace)frame:\(camera):\(requestId)" }
    /// The PSUBSCRIBE pattern matching every camera channel (not the `:latest` keys, which are
    /// not channels).
    public var allCamerasPattern: String { "\(namespace)camera:*" }

    /// The camera id of a channel name of this namespace, or nil.
    public func camera(fromChannel channel: String) -> Int? {
        let prefix = "\(namespace)camera:"
        guard channel.hasPrefix(prefix) else { return nil }
        return CameraID.parse(channel.dropFirst(prefix.count))
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

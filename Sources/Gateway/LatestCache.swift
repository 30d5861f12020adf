import TrafficModel

/// The latest result per camera, kept in process (service thread only).
///
/// Cameras the gateway follows live are fed by the live stream and stay valid for the latest
/// TTL (newer timestamps win, as in Redis: `latest` never goes back). Results read from Redis
/// for cameras it does not follow, and "no result" answers, are kept only briefly.
struct LatestCache {
    struct Entry {
        var result: LiveResult?
        var timestamp: Int64?
        var storedAt: ContinuousClock.Instant
        /// Kept current by the live stream.
        var following: Bool
    }

    private(set) var entries: [Int: Entry] = [:]
    let liveTTL: Duration
    let fallbackTTL: Duration
    /// Sweeps run at most once per fallback TTL (each is a pass over every entry).
    private var lastSweep = ContinuousClock.now

    init(liveTTL: Duration, fallbackTTL: Duration = .seconds(1)) {
        self.liveTTL = liveTTL
        self.fallbackTTL = fallbackTTL
    }

    /// A live result of a followed camera.
    mutating func offer(_ result: LiveResult, timestamp: Int64?, now: ContinuousClock.Instant = .now) {
        if let existing = entries[result.camera], existing.following, let old = existing.timestamp, let new = timestamp, new < old { return }
        entries[result.camera] = Entry(result: result, timestamp: timestamp, storedAt: now, following: true)
    }

    /// A value read from Redis. "No latest" is not kept (any camera id can be asked for; the
    /// cache must not grow with them); expired fallback entries are swept as new ones come.
    mutating func store(_ camera: Int, _ result: LiveResult?, following: Bool, now: ContinuousClock.Instant = .now) {
        guard let result else {
            if entries[camera]?.following == false { entries[camera] = nil }
            return
        }
        if entries.count >= 4_096, now - lastSweep > fallbackTTL { sweepExpired(now: now) }
        let timestamp = Self.timestamp(of: result.payload)
        if let existing = entries[camera], existing.following, let old = existing.timestamp, let new = timestamp, new < old { return }
        entries[camera] = Entry(result: result, timestamp: timestamp, storedAt: now, following: following)
    }

    /// Drops every entry past its TTL, so results that expired (large ones above all) do not stay
    /// in memory until their camera is asked for again: when many fallback entries pile up, and
    /// on the gateway's housekeeping timer.
    mutating func sweepExpired(now: ContinuousClock.Instant = .now) {
        lastSweep = now
        entries = entries.filter { now - $0.value.storedAt < ($0.value.following ? liveTTL : fallbackTTL) }
    }

    /// `.some(value)` when the cache can answer, nil when Redis must be asked. `followingOnly`
    /// answers only from entries the live stream keeps current (what a snapshot may use).
    func lookup(_ camera: Int, followingOnly: Bool = false, now: ContinuousClock.Instant = .now) -> LiveResult?? {
        guard let entry = entries[camera], entry.following || !followingOnly else { return nil }
        let ttl = entry.following ? liveTTL : fallbackTTL
        guard now - entry.storedAt < ttl else { return nil }
        return .some(entry.result)
    }

    /// The camera is no longer followed: its entry becomes a short-lived fallback.
    mutating func stopFollowing(_ camera: Int) {
        entries[camera]?.following = false
    }

    mutating func stopFollowing(where predicate: (Int) -> Bool) {
        for camera in entries.keys where predicate(camera) { entries[camera]?.following = false }
    }

    /// Cameras with a cached result (followed ones).
    var followedCameras: [Int] { entries.filter { $0.value.following && $0.value.result != nil }.map(\.key) }

    /// The `timestamp` member of a result, in epoch milliseconds.
    static func timestamp(of payload: [UInt8]) -> Int64? {
        payload.withUnsafeBufferPointer { bytes -> Int64? in
            guard let members = try? JSONScanner.objectMembers(bytes), // try?: not a JSON object: no timestamp, nil is the answer
                  let member = members.first(where: { $0.key == "timestamp" }), member.kind == .string else { return nil }
            return RFC3339.milliseconds(JSONScanner.decodeString(bytes, member.valueRange))
        }
    }
}

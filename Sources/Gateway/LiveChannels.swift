import RedisClient
import Synchronization
import TrafficModel

/// Where the gateway's live subscriptions go: camera channels by name, and "every camera".
/// Called by `SubscriptionQueue` only, one change at a time; each returns once Redis confirmed it.
protocol LiveChannels: Sendable {
    func subscribe(_ channel: String) async throws(RedisError)
    func unsubscribe(_ channel: String) async throws(RedisError)
    /// Every camera channel, and every camera that appears later.
    func subscribeAll() async throws(RedisError)
    func unsubscribeAll() async throws(RedisError)
    /// Looks for cameras that appeared since the last look, where that is not automatic.
    func discover() async
    /// Cameras the aggregator announced (their first result), where that is not automatic.
    func appeared(_ cameras: [Int]) async
    func close() async
}

/// One Redis server (or a Sentinel-watched primary): channels by `SUBSCRIBE`, every camera by one
/// `PSUBSCRIBE` pattern, which covers new cameras by itself.
struct ServerChannels: LiveChannels {
    let subscriber: RedisSubscriber
    let keys: KeySchema

    func subscribe(_ channel: String) async throws(RedisError) { try await subscriber.subscribe([channel]) }
    func unsubscribe(_ channel: String) async throws(RedisError) { try await subscriber.unsubscribe([channel]) }
    func subscribeAll() async throws(RedisError) { try await subscriber.psubscribe([keys.allCamerasPattern]) }
    func unsubscribeAll() async throws(RedisError) { try await subscriber.punsubscribe([keys.allCamerasPattern]) }
    func discover() async {}
    func appeared(_ cameras: [Int]) async {}
    func close() async { await subscriber.close() }
}

/// A Redis Cluster: every channel a shard channel (`SSUBSCRIBE` on the node serving its slot).
/// Shard channels have no pattern form, so "every camera" is every camera with a position hash
/// on any primary (`SCAN` of each), subscribed one by one; after that, cameras the aggregator
/// announces (`appeared`: its first result, on `KeySchema.camerasAnnounced`) are subscribed at
/// once, and `discover()` (every `--camera-discovery-seconds`) scans again for any announcement
/// that was missed. A new camera is told to the hub *before* its subscription is sent
/// (`announce`), so the hub holds its live results and reads its history from the start: "*"
/// clients get its first results too.
final class ClusterChannels: LiveChannels {
    let subscriber: RedisShardedSubscriber
    let redis: any RedisRouting
    let keys: KeySchema
    let announce: @Sendable ([Int]) -> Void
    private let state = Mutex(State())

    private struct State {
        /// Channels subscribed by name (the hub's cameras with a watcher, the health probe).
        var named: Set<String> = []
        /// Cameras found by discovery while "every camera" is on.
        var found: Set<Int> = []
        var all = false
    }

    init(subscriber: RedisShardedSubscriber, redis: any RedisRouting, keys: KeySchema, announce: @escaping @Sendable ([Int]) -> Void) {
        self.subscriber = subscriber
        self.redis = redis
        self.keys = keys
        self.announce = announce
    }

    func subscribe(_ channel: String) async throws(RedisError) {
        let covered = state.withLock { state -> Bool in
            state.named.insert(channel)
            return state.all && keys.camera(fromChannel: channel).map(state.found.contains) == true
        }
        if !covered { try await subscriber.subscribe([channel]) }
    }

    func unsubscribe(_ channel: String) async throws(RedisError) {
        let covered = state.withLock { state -> Bool in
            state.named.remove(channel)
            return state.all && keys.camera(fromChannel: channel).map(state.found.contains) == true
        }
        if !covered { try await subscriber.unsubscribe([channel]) }
    }

    func subscribeAll() async throws(RedisError) {
        state.withLock { $0.all = true }
        // The snapshot that follows covers what these cameras published so far.
        try await subscribeFound(announcing: false)
    }

    func unsubscribeAll() async throws(RedisError) {
        let released = state.withLock { state -> [String] in
            defer {
                state.all = false
                state.found = []
            }
            return state.found.map(keys.cameraChannel).filter { !state.named.contains($0) }
        }
        try await subscriber.unsubscribe(released.sorted())
    }

    func discover() async {
        guard state.withLock({ $0.all }) else { return }
        do throws(RedisError) {
            try await subscribeFound(announcing: true)
        } catch {
            // The next look tries again; the subscriber reports placement trouble itself.
        }
    }

    func appeared(_ cameras: [Int]) async {
        do throws(RedisError) {
            try await subscribe(Set(cameras), announcing: true)
        } catch {
            // The sharded subscriber holds them and places them when it can.
        }
    }

    /// Subscribes the cameras found on the primaries that are not subscribed yet.
    private func subscribeFound(announcing: Bool) async throws(RedisError) {
        var cameras: Set<Int> = []
        for key in try await redis.keys(matching: keys.allPositionsPattern) {
            if let camera = keys.camera(fromKey: key, suffix: "position") { cameras.insert(camera) }
        }
        try await subscribe(cameras, announcing: announcing)
    }

    /// Subscribes those of `cameras` that "every camera" does not cover yet.
    private func subscribe(_ cameras: Set<Int>, announcing: Bool) async throws(RedisError) {
        // Cameras watched by name are subscribed already: only the others are new to the stream.
        let fresh = state.withLock { state -> [Int] in
            guard state.all else { return [] }
            let fresh = cameras.subtracting(state.found).sorted()
            state.found.formUnion(fresh)
            return fresh.filter { !state.named.contains(keys.cameraChannel($0)) }
        }
        if fresh.isEmpty { return }
        if announcing { announce(fresh) }
        try await subscriber.subscribe(fresh.map(keys.cameraChannel))
    }

    func close() async { await subscriber.close() }
}

import RedisClient
import TrafficModel

/// The gateway's reads of the aggregator's state in Redis (SPEC §3 plus the position and history
/// keys of docs/aggregator.md). Every read is one round trip per server: on a cluster the keys of
/// one camera share its slot, and a read of many cameras is one pipeline to each primary.
struct RedisState: Sendable {
    let redis: any RedisRouting
    let keys: KeySchema
    let historyReadLimit: Int

    /// The camera's position and its history after `after` (oldest first).
    func history(camera: Int, after: ResultPosition) async throws(RedisError) -> HistoryRead {
        var pipeline = RedisPipeline()
        let positionCommand = RedisCommand<[String: [UInt8]]>.hgetall(keys.position(camera))
        let rangeCommand = RedisCommand<[RedisStreamEntry]>.xrange(keys.history(camera), start: "\(after.offset + 1)-0", count: historyReadLimit)
        let p = pipeline.append(positionCommand)
        let r = pipeline.append(rangeCommand)
        let replies = try await redis.execute(pipeline, routedBy: [keys.position(camera), keys.history(camera)])
        let hash = try positionCommand.value(from: replies[p])
        let entries = try rangeCommand.value(from: replies[r])
        let current = Self.position(hash)
        let results = entries.compactMap { entry in entry["r"].map { LiveResult(camera: camera, payload: $0) } }
        return HistoryRead(current: current, entries: results)
    }

    /// The stored latest result of each camera (nil where none).
    func latest(_ cameras: [Int]) async throws(RedisError) -> [Int: LiveResult] {
        guard !cameras.isEmpty else { return [:] }
        let values = try await redis.values(of: cameras.map(keys.latest))
        var out: [Int: LiveResult] = [:]
        for (camera, value) in zip(cameras, values) {
            if let value { out[camera] = LiveResult(camera: camera, payload: value) }
        }
        return out
    }

    /// For a snapshot: each camera's latest result and its position counter, in one round trip
    /// (per primary, on a cluster).
    func snapshot(_ cameras: [Int]) async throws(RedisError) -> [Int: (latest: LiveResult?, current: ResultPosition?)] {
        guard !cameras.isEmpty else { return [:] }
        var pipeline = RedisPipeline(capacity: cameras.count * 2)
        var routing: [String] = []
        routing.reserveCapacity(cameras.count * 2)
        let positions = cameras.map { RedisCommand<[String: [UInt8]]>.hgetall(keys.position($0)) }
        let latests = cameras.map { RedisCommand<[UInt8]?>.get(keys.latest($0)) }
        for (index, camera) in cameras.enumerated() {
            _ = pipeline.append(latests[index])
            _ = pipeline.append(positions[index])
            routing += [keys.latest(camera), keys.position(camera)]
        }
        let replies = try await redis.execute(pipeline, routedBy: routing)
        var out: [Int: (latest: LiveResult?, current: ResultPosition?)] = [:]
        for (index, camera) in cameras.enumerated() {
            let latest = try Self.string(latests[index], replies[2 * index])
            let current = Self.position(try positions[index].value(from: replies[2 * index + 1]))
            out[camera] = (latest.map { LiveResult(camera: camera, payload: $0) }, current)
        }
        return out
    }

    /// A GET's value; a key that holds no string reads as absent (as MGET answers it).
    private static func string(_ command: RedisCommand<[UInt8]?>, _ reply: RedisReply) throws(RedisError) -> [UInt8]? {
        if case .error(let message) = reply, RedisError.ServerCode(errorReply: message) == .wrongType { return nil }
        return try command.value(from: reply)
    }

    /// Every camera with a stored latest result (SCAN over `camera:*:latest`).
    func camerasWithLatest() async throws(RedisError) -> [Int] {
        var cameras: Set<Int> = []
        for key in try await redis.keys(matching: "\(keys.allCamerasPattern):latest") {
            if let camera = keys.camera(fromKey: key, suffix: "latest") { cameras.insert(camera) }
        }
        return cameras.sorted()
    }

    /// The newest `limit` alerts of a camera, and whether the camera is known at all.
    func alerts(camera: Int, limit: Int) async throws(RedisError) -> (alerts: [[UInt8]], known: Bool) {
        var pipeline = RedisPipeline()
        let range = RedisCommand<[[UInt8]]>.lrange(keys.alerts(camera), start: 0, stop: limit - 1)
        let exists = RedisCommand<Int>.exists([keys.position(camera), keys.latest(camera), keys.alerts(camera)])
        let a = pipeline.append(range)
        let e = pipeline.append(exists)
        let replies = try await redis.execute(pipeline, routedBy: [keys.alerts(camera), keys.position(camera)])
        return (try range.value(from: replies[a]), try exists.value(from: replies[e]) > 0)
    }

    /// A stored frame image (nil when absent or expired).
    func frame(camera: Int, requestId: String) async throws(RedisError) -> [UInt8]? {
        let key = keys.frame(camera: camera, requestId: requestId)
        return try await redis.send(.get(key), routedBy: key)
    }

    /// A camera's position counter from its `camera:<id>:position` hash (nil when absent).
    static func position(_ hash: [String: [UInt8]]) -> ResultPosition? {
        guard let offsetBytes = hash["offset"], let offset = Int64(String(decoding: offsetBytes, as: UTF8.self)), let epoch = hash["epoch"] else { return nil }
        return ResultPosition(offset: offset, epoch: String(decoding: epoch, as: UTF8.self))
    }
}

import RedisClient

/// The Lua script that applies a `WritePlan` atomically in one round trip.
///
/// Keys travel in ARGV because one batch touches many cameras; the aggregator therefore needs a
/// single Redis (or a proxy that routes scripts), not Redis Cluster.
///
/// ARGV: latestTTL, trimStop, alertMarkerTTL, historyLength, #cameras, #publishes, #alerts, then
/// cameras (channel, historyKey, positionKey, latestKey, latestTsKey, latestTs, latestPublish)…,
/// publishes (cameraSlot, payload without its opening `{`)…, alerts (marker, list, publish)…;
/// slots and publish indexes are 1-based. Returns {published, latestWritten, alertsPushed}.
///
/// Each publish takes the camera's next offset (the counter in `camera:<id>:position` is read
/// and advanced by the batch's count once per camera, before the publishes); when there is no counter the camera
/// gets a new epoch (server time in µs) and its old history is dropped, because offsets of the
/// old epoch mean nothing in the new one. The payload is published with
/// its position spliced in first (see `ResultPosition`), and the same bytes are appended to the
/// history stream (entry id `<offset>-0`, `MAXLEN ~ historyLength`), stored as `latest` and
/// pushed as the alert, so every reader sees one representation.
enum WriteScript {
    static let script = RedisScript(#"""
    local ttl = ARGV[1]
    local trimStop = tonumber(ARGV[2])
    local markerTTL = ARGV[3]
    local historyLength = ARGV[4]
    local nc, np, na = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
    local i = 8
    local cameras = {}
    for c = 1, nc do
      cameras[c] = {ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], tonumber(ARGV[i + 6])}
      i = i + 7
    end
    -- Each camera's counter is read once and advanced once per batch, before anything is
    -- published: offsets are plain arithmetic in between (the script is atomic), and should
    -- the script fail halfway, no offset it handed out can ever be handed out again.
    local counts = {}
    for p = 0, np - 1 do
      local slot = tonumber(ARGV[i + 2 * p])
      counts[slot] = (counts[slot] or 0) + 1
    end
    for slot, count in pairs(counts) do
      local camera = cameras[slot]
      local state = redis.call('HMGET', camera[3], 'offset', 'epoch')
      local offset, epoch = tonumber(state[1]), state[2]
      if (not offset) or offset < 1 or not epoch then
        -- No counter (first result, or Redis lost it): a new epoch, and the old history is
        -- meaningless under it.
        local now = redis.call('TIME')
        epoch = now[1] .. string.format('%06d', tonumber(now[2]))
        offset = 0
        redis.call('DEL', camera[2])
      end
      redis.call('HSET', camera[3], 'offset', offset + count, 'epoch', epoch)
      camera[8], camera[9] = epoch, offset
    end
    local bodies = {}
    for p = 1, np do
      local camera = cameras[tonumber(ARGV[i])]
      local offset = camera[9] + 1
      camera[9] = offset
      local id = string.format('%d', offset)
      local body = '{"position":{"offset":' .. id .. ',"epoch":"' .. camera[8] .. '"},' .. ARGV[i + 1]
      redis.call('XADD', camera[2], 'MAXLEN', '~', historyLength, id .. '-0', 'r', body)
      redis.call('PUBLISH', camera[1], body)
      bodies[p] = body
      i = i + 2
    end
    local written = 0
    for c = 1, nc do
      local camera = cameras[c]
      local current = redis.call('GET', camera[5])
      if (not current) or tonumber(current) <= tonumber(camera[6]) then
        redis.call('SETEX', camera[4], ttl, bodies[camera[7]])
        redis.call('SETEX', camera[5], ttl, camera[6])
        written = written + 1
      end
    end
    local pushed = 0
    local trimmed = {}
    for _ = 1, na do
      if redis.call('SET', ARGV[i], '1', 'NX', 'EX', markerTTL) then
        redis.call('LPUSH', ARGV[i + 1], bodies[tonumber(ARGV[i + 2])])
        trimmed[ARGV[i + 1]] = true
        pushed = pushed + 1
      end
      i = i + 3
    end
    for list in pairs(trimmed) do
      redis.call('LTRIM', list, 0, trimStop)
    end
    return {np, written, pushed}
    """#)

    static func arguments(for plan: WritePlan, latestTTL: Int, alertListLength: Int, alertMarkerTTL: Int, historyLength: Int) -> [[UInt8]] {
        var args: [[UInt8]] = []
        args.reserveCapacity(7 + plan.latest.count * 7 + plan.publishes.count * 2 + plan.alerts.count * 3)
        for number in [latestTTL, alertListLength - 1, alertMarkerTTL, historyLength, plan.latest.count, plan.publishes.count, plan.alerts.count] {
            args.append(Array(String(number).utf8))
        }
        for camera in plan.latest {
            args.append(Array(camera.channel.utf8))
            args.append(Array(camera.historyKey.utf8))
            args.append(Array(camera.positionKey.utf8))
            args.append(Array(camera.key.utf8))
            args.append(Array(camera.timestampKey.utf8))
            args.append(Array(String(camera.timestampMilliseconds).utf8))
            args.append(Array(String(camera.publishIndex + 1).utf8))
        }
        for publish in plan.publishes {
            args.append(Array(String(publish.cameraSlot + 1).utf8))
            // Without its opening brace: the script puts `{"position":…},` in front.
            args.append(Array(publish.payload.dropFirst()))
        }
        for alert in plan.alerts {
            args.append(Array(alert.markerKey.utf8))
            args.append(Array(alert.listKey.utf8))
            args.append(Array(String(alert.publishIndex + 1).utf8))
        }
        return args
    }

    /// Parses the script's `{published, latestWritten, alertsPushed}` reply.
    static func counts(_ reply: RedisReply) -> (published: Int, latestWritten: Int, alertsPushed: Int)? {
        guard case .array(let items) = reply, items.count == 3,
              case .integer(let p) = items[0], case .integer(let l) = items[1], case .integer(let a) = items[2] else { return nil }
        return (Int(p), Int(l), Int(a))
    }
}

/// Exposes the script-argument encoding to benchmarks and load generators.
public enum WriteScriptArguments {
    /// Encodes a plan with the default settings; returns the bytes it would send.
    public static func make(_ plan: WritePlan) -> Int {
        encode(plan).reduce(0) { $0 + $1.count }
    }

    /// The write script, for load generators that publish exactly as the aggregator does.
    public static var script: RedisScript { WriteScript.script }

    /// The script arguments of a plan with the default settings.
    public static func encode(_ plan: WritePlan) -> [[UInt8]] {
        WriteScript.arguments(for: plan, latestTTL: 300, alertListLength: 100, alertMarkerTTL: 604_800, historyLength: 1000)
    }
}


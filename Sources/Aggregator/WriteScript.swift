import RedisClient

/// The Lua script that applies a `WritePlan` atomically in one round trip.
///
/// Keys travel in ARGV because one batch touches many cameras; the aggregator therefore needs a
/// single Redis (or a proxy that routes scripts), not Redis Cluster.
///
/// ARGV: latestTTL, trimStop, alertMarkerTTL, #publishes, #latest, #alerts, then
/// publishes (channel, payload)…, latest (key, tsKey, ts, payload)…, alerts (marker, list, payload)….
/// Returns {published, latestWritten, alertsPushed}.
enum WriteScript {
    static let script = RedisScript(#"""
    local ttl = ARGV[1]
    local trimStop = tonumber(ARGV[2])
    local markerTTL = ARGV[3]
    local np, nl, na = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
    local i = 7
    for _ = 1, np do
      redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
      i = i + 2
    end
    local written = 0
    for _ = 1, nl do
      local current = redis.call('GET', ARGV[i + 1])
      if (not current) or tonumber(current) <= tonumber(ARGV[i + 2]) then
        redis.call('SETEX', ARGV[i], ttl, ARGV[i + 3])
        redis.call('SETEX', ARGV[i + 1], ttl, ARGV[i + 2])
        written = written + 1
      end
      i = i + 4
    end
    local pushed = 0
    local trimmed = {}
    for _ = 1, na do
      if redis.call('SET', ARGV[i], '1', 'NX', 'EX', markerTTL) then
        redis.call('LPUSH', ARGV[i + 1], ARGV[i + 2])
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

    static func arguments(for plan: WritePlan, latestTTL: Int, alertListLength: Int, alertMarkerTTL: Int) -> [[UInt8]] {
        var args: [[UInt8]] = []
        args.reserveCapacity(6 + plan.publishes.count * 2 + plan.latest.count * 4 + plan.alerts.count * 3)
        for number in [latestTTL, alertListLength - 1, alertMarkerTTL, plan.publishes.count, plan.latest.count, plan.alerts.count] {
            args.append(Array(String(number).utf8))
        }
        for publish in plan.publishes {
            args.append(Array(publish.channel.utf8))
            args.append(publish.payload)
        }
        for update in plan.latest {
            args.append(Array(update.key.utf8))
            args.append(Array(update.timestampKey.utf8))
            args.append(Array(String(update.timestampMilliseconds).utf8))
            args.append(update.payload)
        }
        for alert in plan.alerts {
            args.append(Array(alert.markerKey.utf8))
            args.append(Array(alert.listKey.utf8))
            args.append(alert.payload)
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

/// Exposes the script-argument encoding to benchmarks without exposing the script itself.
public enum WriteScriptArguments {
    /// Encodes a plan with the default settings; returns the bytes it would send.
    public static func make(_ plan: WritePlan) -> Int {
        WriteScript.arguments(for: plan, latestTTL: 300, alertListLength: 100, alertMarkerTTL: 604_800).reduce(0) { $0 + $1.count }
    }
}

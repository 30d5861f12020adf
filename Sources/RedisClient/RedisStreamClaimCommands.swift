import Durations

// A consumer group's pending entries: who holds what (XPENDING) and taking entries over
// (XCLAIM, XAUTOCLAIM).

/// One entry of a consumer group's pending list (the extended form of `XPENDING`).
public struct RedisPendingEntry: Sendable, Hashable {
    /// The entry id.
    public var id: String
    /// The consumer whose pending list holds it.
    public var consumer: String
    /// How long since it was last delivered (or claimed).
    public var idle: Duration
    /// How often it was delivered.
    public var deliveries: Int

    public init(id: String, consumer: String, idle: Duration, deliveries: Int) {
        self.id = id
        self.consumer = consumer
        self.idle = idle
        self.deliveries = deliveries
    }
}

/// A consumer group's pending entries in sum (the summary form of `XPENDING`).
public struct RedisPendingSummary: Sendable, Hashable {
    /// Entries delivered and not acknowledged.
    public var count: Int
    /// The smallest and largest pending id; nil when nothing is pending.
    public var smallestID: String?
    public var largestID: String?
    /// Pending entries per consumer (consumers with none are not listed).
    public var consumers: [String: Int]
}

/// The result of `XAUTOCLAIM`.
public struct RedisAutoClaim: Sendable, Hashable {
    /// Where the next XAUTOCLAIM call should start; `0-0` when the scan is complete.
    public var nextCursor: String
    /// Entries now owned by the claiming consumer.
    public var entries: [RedisStreamEntry]
    /// Ids that were pending but no longer exist in the stream (Redis 7+).
    public var deletedIDs: [String]
}

extension RedisCommand where Value == [RedisPendingEntry] {
    /// `XPENDING key group [IDLE ms] start end count [consumer]`: up to `count` pending entries
    /// with ids from `start` to `end` (inclusive; `-` and `+` for all), of one consumer when
    /// named, only those idle at least `minIdle` when given. `xpending(s, group: g, start: id,
    /// end: id, count: 1)` tells who holds entry `id` (empty: nobody).
    public static func xpending(_ key: String, group: String, start: String = "-", end: String = "+", count: Int, consumer: String? = nil, minIdle: Duration? = nil) -> Self {
        var rest = [key, group]
        if let minIdle { rest += ["IDLE", String(minIdle.wholeMilliseconds)] }
        rest += [start, end, String(count)]
        if let consumer { rest.append(consumer) }
        return Self(RedisArguments("XPENDING", rest)) { reply throws(RedisError) in
            guard case .array(let items) = reply else { throw Decode.unexpected(reply, "an array of pending entries") }
            var entries: [RedisPendingEntry] = []
            entries.reserveCapacity(items.count)
            for item in items {
                guard case .array(let fields) = item, fields.count == 4, let id = fields[0].string, let consumer = fields[1].string,
                      case .integer(let idle) = fields[2], case .integer(let deliveries) = fields[3] else {
                    throw Decode.unexpected(item, "[id, consumer, idle ms, deliveries]")
                }
                entries.append(RedisPendingEntry(id: id, consumer: consumer, idle: .milliseconds(idle), deliveries: Int(deliveries)))
            }
            return entries
        }
    }
}

extension RedisCommand where Value == RedisPendingSummary {
    /// `XPENDING key group`: how many entries are pending, their id range and who holds them.
    public static func xpendingSummary(_ key: String, group: String) -> Self {
        Self(RedisArguments("XPENDING", [key, group])) { reply throws(RedisError) in
            guard case .array(let parts) = reply, parts.count == 4, case .integer(let count) = parts[0] else {
                throw Decode.unexpected(reply, "[count, smallest id, largest id, consumers]")
            }
            var consumers: [String: Int] = [:]
            if case .array(let pairs) = parts[3] {
                for pair in pairs {
                    guard case .array(let fields) = pair, fields.count == 2, let name = fields[0].string,
                          let held = fields[1].string.flatMap({ Int($0) }) else { throw Decode.unexpected(pair, "[consumer, count]") }
                    consumers[name] = held
                }
            }
            return RedisPendingSummary(count: Int(count), smallestID: parts[1].string, largestID: parts[2].string, consumers: consumers)
        }
    }
}

extension RedisCommand where Value == [RedisStreamEntry] {
    /// `XCLAIM key group consumer min-idle-ms id…`: moves the entries (those idle at least
    /// `minIdle`; `.zero`: all) to `consumer`'s pending list, counting a delivery, and returns
    /// them (entries no longer in the stream are left out).
    public static func xclaim(_ key: String, group: String, consumer: String, minIdle: Duration = .zero, ids: [String]) -> Self {
        Self(RedisArguments("XCLAIM", [key, group, consumer, String(minIdle.wholeMilliseconds)] + ids), decode: RedisStreamEntry.decodeList)
    }
}

extension RedisCommand where Value == [String] {
    /// `XCLAIM key group consumer min-idle-ms id… JUSTID`: as `xclaim`, but the delivery count
    /// stays and only the ids of the entries moved come back (resets their idle time: a live
    /// consumer "touches" what it works on this way).
    public static func xclaimJustID(_ key: String, group: String, consumer: String, minIdle: Duration = .zero, ids: [String]) -> Self {
        Self(RedisArguments("XCLAIM", [key, group, consumer, String(minIdle.wholeMilliseconds)] + ids + ["JUSTID"]), decode: Decode.strings)
    }
}

extension RedisCommand where Value == RedisAutoClaim {
    /// `XAUTOCLAIM key group consumer min-idle-ms start [COUNT n]`: takes over entries another
    /// consumer read but did not acknowledge within `minIdle`.
    public static func xautoclaim(_ key: String, group: String, consumer: String, minIdle: Duration, start: String = "0-0", count: Int? = nil) -> Self {
        var rest = [key, group, consumer, String(minIdle.wholeMilliseconds), start]
        if let count { rest += ["COUNT", String(count)] }
        return Self(RedisArguments("XAUTOCLAIM", rest)) { reply throws(RedisError) in
            guard case .array(let parts) = reply, parts.count >= 2, let cursor = parts[0].string else {
                throw Decode.unexpected(reply, "[cursor, entries, deleted]")
            }
            var deleted: [String] = []
            if parts.count > 2, case .array(let ids) = parts[2] {
                for id in ids { deleted.append(try Decode.string(id)) }
            }
            return RedisAutoClaim(nextCursor: cursor, entries: try RedisStreamEntry.decodeList(parts[1]), deletedIDs: deleted)
        }
    }
}

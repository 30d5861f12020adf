import Durations

/// One field/value pair of a stream entry, in the order the producer wrote it.
public struct RedisStreamField: Sendable, Hashable {
    public var name: String
    public var value: [UInt8]

    public init(_ name: String, _ value: [UInt8]) {
        self.name = name
        self.value = value
    }

    public init(_ name: String, _ value: String) {
        self.init(name, Array(value.utf8))
    }
}

/// One entry of a Redis stream.
public struct RedisStreamEntry: Sendable, Hashable {
    /// The entry id, e.g. `1729416600123-0`.
    public var id: String
    public var fields: [RedisStreamField]

    public init(id: String, fields: [RedisStreamField]) {
        self.id = id
        self.fields = fields
    }

    /// The value of the first field with this name.
    public subscript(field: String) -> [UInt8]? {
        fields.first { $0.name == field }?.value
    }

    static func decode(_ reply: RedisReply) throws(RedisError) -> RedisStreamEntry? {
        guard case .array(let parts) = reply, parts.count == 2, let id = parts[0].string else {
            throw Decode.unexpected(reply, "[id, [field, value, …]]")
        }
        // XAUTOCLAIM/XCLAIM report deleted entries with a nil field list.
        guard case .array(let flat) = parts[1] else { return nil }
        var fields: [RedisStreamField] = []
        fields.reserveCapacity(flat.count / 2)
        var index = 0
        while index + 1 < flat.count {
            fields.append(RedisStreamField(try Decode.string(flat[index]), try Decode.bytes(flat[index + 1])))
            index += 2
        }
        return RedisStreamEntry(id: id, fields: fields)
    }

    static func decodeList(_ reply: RedisReply) throws(RedisError) -> [RedisStreamEntry] {
        guard case .array(let items) = reply else { throw Decode.unexpected(reply, "an array of stream entries") }
        var entries: [RedisStreamEntry] = []
        entries.reserveCapacity(items.count)
        for item in items {
            if let entry = try decode(item) { entries.append(entry) }
        }
        return entries
    }
}

/// How a stream is capped on `XADD`.
public enum RedisStreamTrim: Sendable, Hashable {
    /// `MAXLEN ~ n`: cheap, approximate trim (the usual choice).
    case approximateMaxLength(Int)
    /// `MAXLEN = n`: exact trim.
    case exactMaxLength(Int)
}

extension RedisCommand where Value == String {
    /// `XADD key [MAXLEN ~|= n] id field value …`: the id of the new entry.
    public static func xadd(_ key: String, id: String = "*", trim: RedisStreamTrim? = nil, fields: [RedisStreamField]) -> Self {
        var args = RedisArguments("XADD", [key])
        switch trim {
        case .approximateMaxLength(let n): args.append("MAXLEN"); args.append("~"); args.append(n)
        case .exactMaxLength(let n): args.append("MAXLEN"); args.append("="); args.append(n)
        case nil: break
        }
        args.append(id)
        for field in fields { args.append(field.name); args.append(field.value) }
        return Self(args, decode: Decode.string)
    }
}

extension RedisCommand where Value == [RedisStreamEntry] {
    /// `XRANGE key start end [COUNT n]`.
    public static func xrange(_ key: String, start: String = "-", end: String = "+", count: Int? = nil) -> Self {
        var rest = [key, start, end]
        if let count { rest += ["COUNT", String(count)] }
        return Self(RedisArguments("XRANGE", rest), decode: RedisStreamEntry.decodeList)
    }

    /// `XREADGROUP GROUP g c [COUNT n] [BLOCK ms] STREAMS key id` for one stream.
    ///
    /// `id` is `>` for new entries or `0` to re-read this consumer's pending ones. An empty array
    /// means the block timed out. A blocking read occupies its connection: give it a client of
    /// its own, with a command timeout longer than `block`.
    public static func xreadgroup(group: String, consumer: String, stream: String, id: String = ">", count: Int? = nil, block: Duration? = nil, noAck: Bool = false) -> Self {
        var rest = ["GROUP", group, consumer]
        if let count { rest += ["COUNT", String(count)] }
        if let block {
            rest += ["BLOCK", String(block.wholeMilliseconds)]
        }
        if noAck { rest.append("NOACK") }
        rest += ["STREAMS", stream, id]
        return Self(RedisArguments("XREADGROUP", rest)) { reply throws(RedisError) in
            switch reply {
            case .null: return []
            case .array(let streams):
                var entries: [RedisStreamEntry] = []
                for stream in streams {
                    guard case .array(let pair) = stream, pair.count == 2 else { throw Decode.unexpected(stream, "[stream, entries]") }
                    entries += try RedisStreamEntry.decodeList(pair[1])
                }
                return entries
            default:
                throw Decode.unexpected(reply, "stream entries or nil")
            }
        }
    }
}

extension RedisCommand where Value == Void {
    /// `XGROUP CREATE key group id [MKSTREAM]`. Throws a `.server` error whose `serverCode`
    /// is `.busyGroup` when the group exists.
    public static func xgroupCreate(_ key: String, group: String, id: String = "$", makeStream: Bool = true) -> Self {
        var rest = [key, group, id]
        if makeStream { rest.append("MKSTREAM") }
        return Self(RedisArguments("XGROUP", ["CREATE"] + rest), decode: Decode.ok)
    }

    /// `XGROUP SETID key group id`: moves the group's last-delivered cursor (`0` re-reads everything).
    public static func xgroupSetID(_ key: String, group: String, id: String) -> Self {
        Self(RedisArguments("XGROUP", ["SETID", key, group, id]), decode: Decode.ok)
    }
}

extension RedisCommand where Value == Int {
    /// `XLEN key`.
    public static func xlen(_ key: String) -> Self { Self(RedisArguments("XLEN", [key]), decode: Decode.integer) }

    /// `XACK key group id…`: how many entries were acknowledged.
    public static func xack(_ key: String, group: String, ids: [String]) -> Self {
        Self(RedisArguments("XACK", [key, group] + ids), decode: Decode.integer)
    }

    /// `XDEL key id…`: how many entries were deleted (ids not in the stream count nothing).
    public static func xdel(_ key: String, ids: [String]) -> Self {
        Self(RedisArguments("XDEL", [key] + ids), decode: Decode.integer)
    }
}

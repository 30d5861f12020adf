/// A Redis command together with the typed decoding of its reply.
///
/// Commands are values: build them with the static factories (`.get("k")`, `.setex(…)`), send one
/// with `RedisClient.send(_:)`, or queue many in a `RedisPipeline`; inside a transaction, its
/// `arguments` are what `transaction(watching:reads:prepare:)` queues
/// (`RedisCommand<Int>.hset(key, [(field, value)]).arguments`). The factories cover what the
/// product needs, one file per family (keys and strings here; hashes, lists, sorted sets,
/// streams, server); `RedisCommand<RedisReply>.raw([...])` reaches any other command.
public struct RedisCommand<Value: Sendable>: Sendable {
    public let arguments: RedisArguments
    /// Turns a non-error reply into the typed value; throws `.unexpectedReply` on a wrong shape.
    public let decode: @Sendable (RedisReply) throws(RedisError) -> Value

    public init(_ arguments: RedisArguments, decode: @escaping @Sendable (RedisReply) throws(RedisError) -> Value) {
        self.arguments = arguments
        self.decode = decode
    }

    /// Decodes a reply, turning an error reply into a thrown `.server` error.
    public func value(from reply: RedisReply) throws(RedisError) -> Value {
        if case .error(let message) = reply {
            throw RedisError(kind: .server, message: message, command: arguments.name)
        }
        return try decode(reply)
    }
}

/// Reply decoders shared by the command factories.
enum Decode {
    static func unexpected(_ reply: RedisReply, _ expected: String) -> RedisError {
        RedisError(kind: .unexpectedReply, message: "expected \(expected), got \(reply)")
    }

    @Sendable static func ok(_ reply: RedisReply) throws(RedisError) {
        guard case .status = reply else { throw unexpected(reply, "a status reply") }
    }

    @Sendable static func integer(_ reply: RedisReply) throws(RedisError) -> Int {
        guard case .integer(let value) = reply else { throw unexpected(reply, "an integer") }
        return Int(value)
    }

    /// An integer reply, or a null one (`LPOS` of an element not in the list).
    @Sendable static func optionalInteger(_ reply: RedisReply) throws(RedisError) -> Int? {
        switch reply {
        case .integer(let value): return Int(value)
        case .null: return nil
        default: throw unexpected(reply, "an integer or null")
        }
    }

    /// An integer reply of 1 or 0 (`HSETNX`, `SETNX`-style answers).
    @Sendable static func flag(_ reply: RedisReply) throws(RedisError) -> Bool {
        guard case .integer(let value) = reply, value == 0 || value == 1 else { throw unexpected(reply, "1 or 0") }
        return value == 1
    }

    @Sendable static func optionalBytes(_ reply: RedisReply) throws(RedisError) -> [UInt8]? {
        switch reply {
        case .null: return nil
        case .bulk(let bytes): return bytes
        default: throw unexpected(reply, "a bulk string or nil")
        }
    }

    @Sendable static func bytes(_ reply: RedisReply) throws(RedisError) -> [UInt8] {
        guard let bytes = reply.bytes else { throw unexpected(reply, "a bulk string") }
        return bytes
    }

    @Sendable static func string(_ reply: RedisReply) throws(RedisError) -> String {
        guard let text = reply.string else { throw unexpected(reply, "a string") }
        return text
    }

    @Sendable static func optionalBytesArray(_ reply: RedisReply) throws(RedisError) -> [[UInt8]?] {
        guard case .array(let items) = reply else { throw unexpected(reply, "an array") }
        var result: [[UInt8]?] = []
        result.reserveCapacity(items.count)
        for item in items { result.append(try optionalBytes(item)) }
        return result
    }

    @Sendable static func bytesArray(_ reply: RedisReply) throws(RedisError) -> [[UInt8]] {
        guard case .array(let items) = reply else { throw unexpected(reply, "an array") }
        var result: [[UInt8]] = []
        result.reserveCapacity(items.count)
        for item in items { result.append(try bytes(item)) }
        return result
    }

    @Sendable static func strings(_ reply: RedisReply) throws(RedisError) -> [String] {
        guard case .array(let items) = reply else { throw unexpected(reply, "an array") }
        var result: [String] = []
        result.reserveCapacity(items.count)
        for item in items { result.append(try string(item)) }
        return result
    }

    @Sendable static func hash(_ reply: RedisReply) throws(RedisError) -> [String: [UInt8]] {
        guard case .array(let items) = reply, items.count % 2 == 0 else { throw unexpected(reply, "an array of field/value pairs") }
        var result: [String: [UInt8]] = [:]
        var index = 0
        while index < items.count {
            result[try string(items[index])] = try bytes(items[index + 1])
            index += 2
        }
        return result
    }
}

extension RedisArguments {
    init(_ name: String, _ rest: [String] = []) {
        self.init()
        append(name)
        for part in rest { append(part) }
    }
}

// MARK: - Connection and server

extension RedisCommand where Value == RedisReply {
    /// Any command, reply returned as it came (error replies still throw in `send`).
    public static func raw(_ parts: [String]) -> Self {
        Self(RedisArguments(parts)) { $0 }
    }

    /// Any command with binary arguments.
    public static func raw(_ arguments: RedisArguments) -> Self {
        Self(arguments) { $0 }
    }
}

// MARK: - Strings and keys

extension RedisCommand where Value == [UInt8]? {
    /// `GET key`: nil when the key does not exist.
    public static func get(_ key: String) -> Self {
        Self(RedisArguments("GET", [key]), decode: Decode.optionalBytes)
    }
}

extension RedisCommand where Value == [[UInt8]?] {
    /// `MGET key…`: one entry per key, nil where missing.
    public static func mget(_ keys: [String]) -> Self {
        Self(RedisArguments("MGET", keys), decode: Decode.optionalBytesArray)
    }
}

/// Expiry option of `SET`.
public enum RedisExpiry: Sendable, Hashable {
    case seconds(Int)
    case milliseconds(Int)
}

extension RedisCommand where Value == Bool {
    /// `SET key value [EX s|PX ms] [NX]`: false when NX prevented the write.
    public static func set<Bytes: Collection & Sendable>(_ key: String, _ value: Bytes, expiry: RedisExpiry? = nil, onlyIfAbsent: Bool = false) -> Self where Bytes.Element == UInt8 {
        var args = RedisArguments("SET", [key])
        args.append(value)
        switch expiry {
        case .seconds(let s): args.append("EX"); args.append(s)
        case .milliseconds(let ms): args.append("PX"); args.append(ms)
        case nil: break
        }
        if onlyIfAbsent { args.append("NX") }
        return Self(args) { reply throws(RedisError) in
            switch reply {
            case .status: return true
            case .null: return false
            default: throw Decode.unexpected(reply, "OK or nil")
            }
        }
    }

    /// `SET key value` for text values.
    public static func set(_ key: String, _ value: String, expiry: RedisExpiry? = nil, onlyIfAbsent: Bool = false) -> Self {
        set(key, Array(value.utf8), expiry: expiry, onlyIfAbsent: onlyIfAbsent)
    }
}

extension RedisCommand where Value == Void {
    /// `SETEX key seconds value`.
    public static func setex<Bytes: Collection & Sendable>(_ key: String, seconds: Int, _ value: Bytes) -> Self where Bytes.Element == UInt8 {
        var args = RedisArguments("SETEX", [key, String(seconds)])
        args.append(value)
        return Self(args, decode: Decode.ok)
    }

    /// `SETEX key seconds value` for a text value.
    public static func setex(_ key: String, seconds: Int, _ value: String) -> Self {
        setex(key, seconds: seconds, Array(value.utf8))
    }

    /// `LTRIM key start stop`.
    public static func ltrim(_ key: String, start: Int, stop: Int) -> Self {
        Self(RedisArguments("LTRIM", [key, String(start), String(stop)]), decode: Decode.ok)
    }
}

extension RedisCommand where Value == Int {
    /// `DEL key…`: how many keys were removed.
    public static func del(_ keys: [String]) -> Self { Self(RedisArguments("DEL", keys), decode: Decode.integer) }

    /// `EXISTS key…`: how many of the keys exist.
    public static func exists(_ keys: [String]) -> Self { Self(RedisArguments("EXISTS", keys), decode: Decode.integer) }

    /// `PUBLISH channel message`: how many subscribers received it.
    public static func publish<Bytes: Collection & Sendable>(_ channel: String, _ message: Bytes) -> Self where Bytes.Element == UInt8 {
        var args = RedisArguments("PUBLISH", [channel])
        args.append(message)
        return Self(args, decode: Decode.integer)
    }

    /// `SPUBLISH`: a message on a Redis Cluster shard channel (delivered by the nodes of the
    /// channel's slot only); send it routed by the channel's name.
    public static func spublish<Bytes: Collection & Sendable>(_ channel: String, _ message: Bytes) -> Self where Bytes.Element == UInt8 {
        var args = RedisArguments("SPUBLISH", [channel])
        args.append(message)
        return Self(args, decode: Decode.integer)
    }

    /// `LPUSH key value…`: the list length after the push.
    public static func lpush<Bytes: Collection & Sendable>(_ key: String, _ values: [Bytes]) -> Self where Bytes.Element == UInt8 {
        var args = RedisArguments("LPUSH", [key])
        for value in values { args.append(value) }
        return Self(args, decode: Decode.integer)
    }

    /// `LLEN key`.
    public static func llen(_ key: String) -> Self { Self(RedisArguments("LLEN", [key]), decode: Decode.integer) }
}

extension RedisCommand where Value == Int? {
    /// `LPOS key element`: the index of the element's first occurrence, nil when absent.
    public static func lpos(_ key: String, _ element: String) -> Self {
        Self(RedisArguments("LPOS", [key, element]), decode: Decode.optionalInteger)
    }
}

extension RedisCommand where Value == [[UInt8]] {
    /// `LRANGE key start stop`.
    public static func lrange(_ key: String, start: Int, stop: Int) -> Self {
        Self(RedisArguments("LRANGE", [key, String(start), String(stop)]), decode: Decode.bytesArray)
    }
}

/// One page of a `SCAN` cursor walk.
public struct RedisScanPage: Sendable, Hashable {
    /// The cursor for the next call; 0 when the walk is complete.
    public var cursor: UInt64
    public var keys: [String]
}

extension RedisCommand where Value == RedisScanPage {
    /// `SCAN cursor [MATCH pattern] [COUNT n]`.
    public static func scan(cursor: UInt64, match: String? = nil, count: Int? = nil) -> Self {
        var rest = [String(cursor)]
        if let match { rest += ["MATCH", match] }
        if let count { rest += ["COUNT", String(count)] }
        return Self(RedisArguments("SCAN", rest)) { reply throws(RedisError) in
            guard case .array(let parts) = reply, parts.count == 2,
                  let cursorText = parts[0].string, let cursor = UInt64(cursorText),
                  case .array(let keys) = parts[1] else { throw Decode.unexpected(reply, "[cursor, [keys]]") }
            var names: [String] = []
            for key in keys { names.append(try Decode.string(key)) }
            return RedisScanPage(cursor: cursor, keys: names)
        }
    }
}

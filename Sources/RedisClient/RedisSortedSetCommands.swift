// The sorted-set commands: ZADD, ZSCORE, ZREM, ZRANGE, ZREVRANGE.

extension RedisCommand where Value == Int {
    /// `ZADD key score member …`: how many members were added (not counting those whose score
    /// was updated).
    public static func zadd(_ key: String, _ members: [(score: Double, member: String)]) -> Self {
        var args = RedisArguments("ZADD", [key])
        for (score, member) in members { args.append(scoreArgument(score)); args.append(member) }
        return Self(args, decode: Decode.integer)
    }

    /// `ZADD key score member` for one member.
    public static func zadd(_ key: String, score: Double, member: String) -> Self {
        zadd(key, [(score: score, member: member)])
    }

    /// `ZREM key member…`: how many members were removed.
    public static func zrem(_ key: String, members: [String]) -> Self {
        Self(RedisArguments("ZREM", [key] + members), decode: Decode.integer)
    }
}

extension RedisCommand where Value == Double? {
    /// `ZSCORE key member`: the member's score, nil when the key or the member does not exist.
    public static func zscore(_ key: String, member: String) -> Self {
        Self(RedisArguments("ZSCORE", [key, member])) { reply throws(RedisError) in
            switch reply {
            case .null: return nil
            case .bulk, .status:
                guard let score = reply.string.flatMap({ Double($0) }) else { throw Decode.unexpected(reply, "a score") }
                return score
            default: throw Decode.unexpected(reply, "a score or nil")
            }
        }
    }
}

extension RedisCommand where Value == [String] {
    /// `ZRANGE key start stop`: the members ranked `start`…`stop` (0-based, inclusive,
    /// negative from the end), lowest score first.
    public static func zrange(_ key: String, start: Int, stop: Int) -> Self {
        Self(RedisArguments("ZRANGE", [key, String(start), String(stop)]), decode: Decode.strings)
    }

    /// `ZREVRANGE key start stop`: the members ranked `start`…`stop`, highest score first
    /// (`zrevrange(key, start: 0, stop: 9)`: the ten highest).
    public static func zrevrange(_ key: String, start: Int, stop: Int) -> Self {
        Self(RedisArguments("ZREVRANGE", [key, String(start), String(stop)]), decode: Decode.strings)
    }
}

/// A score as Redis reads it: integral scores as integers (`1729416600123`, not
/// `1.729416600123e+12`), others in Swift's shortest round-trip form (`inf` and `-inf` included).
func scoreArgument(_ score: Double) -> String {
    if score.rounded() == score, abs(score) < 9_007_199_254_740_992 { return String(Int64(score)) }
    return score.description
}

// The hash commands: HSET, HSETNX, HGET, HMGET, HGETALL, HINCRBY.

extension RedisCommand where Value == Int {
    /// `HSET key field value …`: how many fields were added (not counting those overwritten).
    public static func hset(_ key: String, _ fields: [(String, [UInt8])]) -> Self {
        var args = RedisArguments("HSET", [key])
        for (field, value) in fields { args.append(field); args.append(value) }
        return Self(args, decode: Decode.integer)
    }

    /// `HSET key field value …` with text values.
    public static func hset(_ key: String, _ fields: [(String, String)]) -> Self {
        var args = RedisArguments("HSET", [key])
        for (field, value) in fields { args.append(field); args.append(value) }
        return Self(args, decode: Decode.integer)
    }

    /// `HINCRBY key field increment`: the field's value after the increment (a missing field
    /// counts as 0).
    public static func hincrby(_ key: String, field: String, by increment: Int) -> Self {
        Self(RedisArguments("HINCRBY", [key, field, String(increment)]), decode: Decode.integer)
    }

    /// `HDEL key field…`: how many of the fields were there.
    public static func hdel(_ key: String, fields: [String]) -> Self {
        Self(RedisArguments("HDEL", [key] + fields), decode: Decode.integer)
    }
}

extension RedisCommand where Value == Bool {
    /// `HSETNX key field value`: true when the field was set, false when it existed (left as it was).
    public static func hsetnx<Bytes: Collection & Sendable>(_ key: String, field: String, _ value: Bytes) -> Self where Bytes.Element == UInt8 {
        var args = RedisArguments("HSETNX", [key, field])
        args.append(value)
        return Self(args, decode: Decode.flag)
    }

    /// `HSETNX key field value` with a text value.
    public static func hsetnx(_ key: String, field: String, _ value: String) -> Self {
        hsetnx(key, field: field, Array(value.utf8))
    }
}

extension RedisCommand where Value == [UInt8]? {
    /// `HGET key field`: nil when the key or the field does not exist.
    public static func hget(_ key: String, field: String) -> Self {
        Self(RedisArguments("HGET", [key, field]), decode: Decode.optionalBytes)
    }
}

extension RedisCommand where Value == [[UInt8]?] {
    /// `HMGET key field…`: one value per field, in order, nil where missing.
    public static func hmget(_ key: String, fields: [String]) -> Self {
        Self(RedisArguments("HMGET", [key] + fields), decode: Decode.optionalBytesArray)
    }
}

extension RedisCommand where Value == [String: [UInt8]] {
    /// `HGETALL key`.
    public static func hgetall(_ key: String) -> Self {
        Self(RedisArguments("HGETALL", [key]), decode: Decode.hash)
    }
}

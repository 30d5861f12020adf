/// A Lua script run with `EVALSHA`, loaded on demand.
///
/// The SHA1 is computed by the server on `SCRIPT LOAD`; `RedisClient.run(_:)` (and
/// `RedisPipeline` via `RedisClient.execute`) sends `EVALSHA` and, when the server answers
/// `NOSCRIPT` (first use, restart, `SCRIPT FLUSH`), loads the script and retries once.
public struct RedisScript: Sendable, Hashable {
    public let source: String

    public init(_ source: String) {
        self.source = source
    }

    /// `SCRIPT LOAD source` → the SHA1 digest.
    public var load: RedisCommand<String> {
        RedisCommand(RedisArguments("SCRIPT", ["LOAD", source]), decode: Decode.string)
    }

    /// `EVALSHA sha numkeys key… arg…` with binary arguments.
    public static func evalsha(sha: String, keys: [String], arguments: [[UInt8]]) -> RedisCommand<RedisReply> {
        var args = RedisArguments("EVALSHA", [sha, String(keys.count)] + keys)
        for argument in arguments { args.append(argument) }
        return .raw(args) // a script's reply has whatever shape the script gives it
    }
}

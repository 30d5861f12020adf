import Durations

// The connection and server commands: PING, INFO, AUTH, SELECT, ROLE, TIME, WAIT, SHUTDOWN, and
// the one Sentinel question the client asks.

extension RedisCommand where Value == String {
    /// `PING` → `PONG`.
    public static func ping() -> Self { Self(RedisArguments("PING"), decode: Decode.string) }

    /// `INFO [section]`: the raw text.
    public static func info(_ section: String? = nil) -> Self {
        Self(RedisArguments("INFO", section.map { [$0] } ?? []), decode: Decode.string)
    }

    /// `ROLE`: the server's role, `master`, `slave` (a replica) or `sentinel`.
    public static func role() -> Self {
        Self(RedisArguments("ROLE")) { reply throws(RedisError) in
            guard case .array(let fields) = reply, let role = fields.first?.string else { throw Decode.unexpected(reply, "[role, …]") }
            return role
        }
    }
}

extension RedisCommand where Value == Void {
    /// `SHUTDOWN [NOSAVE|SAVE]`. The server closes the connection instead of answering, so a
    /// lost connection after this command is success (handled by `RedisClient.shutdownServer`).
    public static func shutdown(save: Bool? = nil) -> Self {
        var args = RedisArguments("SHUTDOWN")
        if let save { args.append(save ? "SAVE" : "NOSAVE") }
        return Self(args, decode: Decode.ok)
    }

    /// `SELECT db`.
    public static func select(_ database: Int) -> Self {
        Self(RedisArguments("SELECT", [String(database)]), decode: Decode.ok)
    }

    /// `AUTH [username] password` (nil user: the `default` user).
    public static func auth(username: String?, password: String) -> Self {
        Self(RedisArguments("AUTH", (username.map { [$0] } ?? []) + [password]), decode: Decode.ok)
    }
}

/// The server's clock, as `TIME` reports it.
public struct RedisTime: Sendable, Hashable {
    /// Whole seconds since the Unix epoch.
    public var seconds: Int64
    /// Microseconds into the current second (0–999,999).
    public var microseconds: Int64

    public init(seconds: Int64, microseconds: Int64) {
        self.seconds = seconds
        self.microseconds = microseconds
    }
}

extension RedisCommand where Value == RedisTime {
    /// `TIME`: the server's clock (the same for every client of that server).
    public static func time() -> Self {
        Self(RedisArguments("TIME")) { reply throws(RedisError) in
            guard case .array(let parts) = reply, parts.count == 2,
                  let seconds = parts[0].string.flatMap({ Int64($0) }), let micros = parts[1].string.flatMap({ Int64($0) }) else {
                throw Decode.unexpected(reply, "[seconds, microseconds]")
            }
            return RedisTime(seconds: seconds, microseconds: micros)
        }
    }
}

extension RedisCommand where Value == Int {
    /// `WAIT numreplicas timeout`: blocks until `replicas` replicas have every write this
    /// connection made, or `timeout` passed; how many have them. A nil timeout waits for ever
    /// (Redis' 0); a positive one is at least 1 ms (less would round to "for ever"). It counts
    /// one connection's writes: send it with `RedisClient.send(_:onConnection:)` or as a
    /// transaction's `after:`.
    public static func wait(replicas: Int, timeout: Duration?) -> Self {
        let milliseconds = timeout.map { max(1, $0.wholeMilliseconds) } ?? 0
        return Self(RedisArguments("WAIT", [String(replicas), String(milliseconds)]), decode: Decode.integer)
    }
}

extension RedisCommand where Value == RedisConfiguration.Sentinels.Address? {
    /// `SENTINEL get-master-addr-by-name name` (to a sentinel): the primary it names, nil when
    /// it does not know the name.
    public static func sentinelPrimaryAddress(master: String) -> Self {
        Self(RedisArguments("SENTINEL", ["get-master-addr-by-name", master])) { reply throws(RedisError) in
            switch reply {
            case .null:
                return nil
            case .array(let fields) where fields.count == 2:
                guard let host = fields[0].string, let port = fields[1].string.flatMap({ Int($0) }), (1...65535).contains(port) else {
                    throw Decode.unexpected(reply, "[host, port]")
                }
                return .init(host: host, port: port)
            default:
                throw Decode.unexpected(reply, "[host, port] or nil")
            }
        }
    }
}

/// Where and how to connect to Redis.
///
/// Built from a URL: `redis://[[user]:password@]host[:port][/db]`, `unix:///path/to/redis.sock[?db=N]`
/// or a bare absolute socket path. Percent-escapes in the user and password are decoded.
public struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// The server address.
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
    }

    public var endpoint: Endpoint
    /// ACL user name for `AUTH user password`; nil uses the `default` user.
    public var username: String?
    public var password: String?
    /// Database index selected after connecting.
    public var database: Int
    /// Upper bound for establishing the connection (TCP connect + AUTH + SELECT).
    public var connectTimeout: Duration
    /// Upper bound for one command (or one pipeline) to be answered; the connection is dropped
    /// after a timeout because its replies can no longer be matched to commands.
    public var commandTimeout: Duration
    /// Back-off between reconnect attempts after a connection is lost.
    public var reconnect: ReconnectBackoff.Policy

    public init(
        endpoint: Endpoint,
        username: String? = nil,
        password: String? = nil,
        database: Int = 0,
        connectTimeout: Duration = .seconds(2),
        commandTimeout: Duration = .seconds(5),
        reconnect: ReconnectBackoff.Policy = .init()
    ) {
        self.endpoint = endpoint
        self.username = username
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.reconnect = reconnect
    }

    /// Parses a Redis URL; the error names the part that is wrong.
    public init(url: String) throws(RedisError) {
        func invalid(_ why: String) -> RedisError {
            RedisError(kind: .invalidConfiguration, message: "Redis URL '\(Self.masked(url))': \(why)")
        }
        if url.hasPrefix("/") {
            self.init(endpoint: .unix(path: url))
            return
        }
        guard let schemeEnd = url.range(of: "://") else {
            throw invalid("expected redis://host:port[/db] or unix:///path")
        }
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        var rest = Substring(url[schemeEnd.upperBound...])
        var query: [String: String] = [:]
        if let q = rest.firstIndex(of: "?") {
            for pair in rest[rest.index(after: q)...].split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1)
                query[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            rest = rest[..<q]
        }
        var username: String?
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userinfo.firstIndex(of: ":") {
                let user = String(userinfo[..<colon])
                username = user.isEmpty ? nil : Self.percentDecoded(user)
                password = Self.percentDecoded(String(userinfo[userinfo.index(after: colon)...]))
            } else if !userinfo.isEmpty {
                // `redis://secret@host` is the classic password-only form.
                password = Self.percentDecoded(String(userinfo))
            }
        }
        var database = 0
        if let db = query["db"] {
            guard let value = Int(db), value >= 0 else { throw invalid("db '\(db)' is not a database index") }
            database = value
        }
        switch scheme {
        case "redis":
            var hostPort = rest
            if let slash = rest.firstIndex(of: "/") {
                hostPort = rest[..<slash]
                let path = rest[rest.index(after: slash)...]
                if !path.isEmpty {
                    guard let value = Int(path), value >= 0 else { throw invalid("database '\(path)' is not a number") }
                    database = value
                }
            }
            var host = String(hostPort)
            var port = 6379
            if hostPort.hasPrefix("[") , let close = hostPort.firstIndex(of: "]") {
                host = String(hostPort[hostPort.index(after: hostPort.startIndex)..<close])
                let after = hostPort[hostPort.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw invalid("port '\(after.dropFirst())' is not 1–65535") }
                    port = p
                }
            } else if let colon = hostPort.lastIndex(of: ":") {
                host = String(hostPort[..<colon])
                let portText = hostPort[hostPort.index(after: colon)...]
                guard let p = Int(portText), (1...65535).contains(p) else { throw invalid("port '\(portText)' is not 1–65535") }
                port = p
            }
            if host.isEmpty { host = "127.0.0.1" }
            self.init(endpoint: .tcp(host: host, port: port), username: username, password: password, database: database)
        case "unix", "redis+unix":
            guard rest.hasPrefix("/") else { throw invalid("unix socket path must be absolute") }
            self.init(endpoint: .unix(path: String(rest)), username: username, password: password, database: database)
        case "rediss":
            throw invalid("TLS (rediss://) is not supported by this build; use a TLS-terminating proxy or a unix socket")
        default:
            throw invalid("unknown scheme '\(scheme)'")
        }
    }

    /// The URL with the password replaced by `***`, safe for logs.
    public var description: String {
        var auth = ""
        if username != nil || password != nil {
            auth = "\(username ?? "")\(password != nil ? ":***" : "")@"
        }
        switch endpoint {
        case .tcp(let host, let port):
            let h = host.contains(":") ? "[\(host)]" : host
            return "redis://\(auth)\(h):\(port)/\(database)"
        case .unix(let path):
            return "unix://\(auth)\(path)?db=\(database)"
        }
    }

    /// Masks the password part of a URL the user typed, for error messages and logs.
    public static func masked(_ url: String) -> String {
        guard let schemeEnd = url.range(of: "://"), let at = url[schemeEnd.upperBound...].lastIndex(of: "@") else { return url }
        let userinfo = url[schemeEnd.upperBound..<at]
        if let colon = userinfo.firstIndex(of: ":") {
            return String(url[..<colon]) + ":***" + String(url[at...])
        }
        return String(url[..<schemeEnd.upperBound]) + "***" + String(url[at...])
    }

    private static func percentDecoded(_ text: String) -> String {
        guard text.contains("%") else { return text }
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%"), let h = iterator.next(), let l = iterator.next(),
               let value = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16) {
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

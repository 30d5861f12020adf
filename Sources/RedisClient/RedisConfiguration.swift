/// Where and how to connect to Redis.
public import Backoff
///
/// Built from a URL: `redis://[[user]:password@]host[:port][/db]`, `unix:///path/to/redis.sock[?db=N]`,
/// a bare absolute socket path, or for a primary behind Sentinel
/// `redis-sentinel://[[user]:password@]host1[:26379],host2[:26379],…/master-name[/db]` (the
/// user and password are the data nodes'; `?sentinel_password=…&sentinel_username=…` are the
/// sentinels' own, when they ask for one), or for a Redis Cluster
/// `redis-cluster://[[user]:password@]host1[:6379],host2[:6379],…` (seed nodes; the cluster
/// client learns the rest). Percent-escapes in users and passwords are decoded.
public struct RedisConfiguration: Sendable, Equatable, CustomStringConvertible {
    /// The server address.
    public enum Endpoint: Sendable, Equatable {
        case tcp(host: String, port: Int)
        case unix(path: String)
        /// Whichever server the sentinels name as the primary of a master name, asked at every
        /// connect (so a failover is followed by reconnecting), and checked with `ROLE`.
        case sentinel(Sentinels)
        /// A Redis Cluster, found through these seed nodes (any that answers gives the slot map);
        /// served by `RedisClusterClient`, which connects to each primary with `.tcp`.
        case cluster(seeds: [Address])
        /// The primary serving the hash slot of `key` in a Redis Cluster, asked of the seeds at
        /// every connect (so a failover or a reshard is followed by reconnecting; a `MOVED`
        /// reply drops the connection). For parts of the product whose keys all share one hash
        /// tag and so live on one primary: the experiment pipeline and the grid pool.
        case clusterSlot(seeds: [Address], key: String)
    }

    /// This cluster configuration narrowed to the primary of `key`'s slot (`.clusterSlot`);
    /// any other configuration as it is.
    public func pinned(toSlotOf key: String) -> RedisConfiguration {
        guard case .cluster(let seeds) = endpoint else { return self }
        var pinned = self
        pinned.endpoint = .clusterSlot(seeds: seeds, key: key)
        return pinned
    }

    /// A host and port.
    public typealias Address = Sentinels.Address

    /// The sentinels that watch one primary, and how to talk to them.
    public struct Sentinels: Sendable, Equatable {
        /// Sentinel addresses, asked in order until one names the primary.
        public var addresses: [Address]
        /// The master name the sentinels know the primary by (`sentinel monitor <name> …`).
        public var master: String
        /// Credentials of the sentinels themselves (not of the data nodes), when they require them.
        public var username: String?
        public var password: String?

        public struct Address: Sendable, Hashable, CustomStringConvertible {
            public var host: String
            public var port: Int
            public init(host: String, port: Int) {
                self.host = host
                self.port = port
            }
            public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
        }

        public init(addresses: [Address], master: String, username: String? = nil, password: String? = nil) {
            self.addresses = addresses
            self.master = master
            self.username = username
            self.password = password
        }
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
            throw invalid("expected redis://host:port[/db], redis-sentinel://host:port,…/master, redis-cluster://host:port,… or unix:///path")
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
        /// `host[:port]` (IPv6 in brackets), the port defaulting to `defaultPort`.
        func hostAndPort(_ text: Substring, defaultPort: Int) throws(RedisError) -> (String, Int) {
            var host = String(text)
            var port = defaultPort
            if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
                host = String(text[text.index(after: text.startIndex)..<close])
                let after = text[text.index(after: close)...]
                if after.hasPrefix(":") {
                    guard let p = Int(after.dropFirst()), (1...65535).contains(p) else { throw invalid("port '\(after.dropFirst())' is not 1–65535") }
                    port = p
                }
            } else if let colon = text.lastIndex(of: ":") {
                host = String(text[..<colon])
                let portText = text[text.index(after: colon)...]
                guard let p = Int(portText), (1...65535).contains(p) else { throw invalid("port '\(portText)' is not 1–65535") }
                port = p
            }
            return (host, port)
        }
        switch scheme {
        case "redis-cluster", "redis+cluster":
            guard !rest.isEmpty else { throw invalid("expected redis-cluster://host:port[,host:port…]") }
            let seedText = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
            if seedText.count > 1, !seedText[1].isEmpty, seedText[1] != "0" {
                throw invalid("a cluster has only database 0: remove '/\(seedText[1])'")
            }
            guard query["db"].map({ $0 == "0" }) ?? true else { throw invalid("a cluster has only database 0") }
            var seeds: [Address] = []
            for item in seedText[0].split(separator: ",", omittingEmptySubsequences: false) {
                guard !item.isEmpty else { throw invalid("empty node address in '\(seedText[0])'") }
                let (host, port) = try hostAndPort(item, defaultPort: 6379)
                guard !host.isEmpty else { throw invalid("node address '\(item)' has no host") }
                seeds.append(.init(host: host, port: port))
            }
            guard !seeds.isEmpty else { throw invalid("expected redis-cluster://host:port[,host:port…]") }
            self.init(endpoint: .cluster(seeds: seeds), username: username, password: password, database: 0)
        case "redis-sentinel", "redis+sentinel":
            guard let slash = rest.firstIndex(of: "/") else { throw invalid("expected redis-sentinel://host:port[,host:port…]/master-name") }
            let hosts = rest[..<slash].split(separator: ",", omittingEmptySubsequences: false)
            var addresses: [Sentinels.Address] = []
            for item in hosts {
                guard !item.isEmpty else { throw invalid("empty sentinel address in '\(rest[..<slash])'") }
                let (host, port) = try hostAndPort(item, defaultPort: 26379)
                guard !host.isEmpty else { throw invalid("sentinel address '\(item)' has no host") }
                addresses.append(.init(host: host, port: port))
            }
            let path = rest[rest.index(after: slash)...].split(separator: "/", omittingEmptySubsequences: false)
            guard let name = path.first, !name.isEmpty else { throw invalid("no master name after the sentinel addresses (…/mymaster)") }
            if path.count > 1, !path[1].isEmpty {
                guard let value = Int(path[1]), value >= 0 else { throw invalid("database '\(path[1])' is not a number") }
                database = value
            }
            guard path.count <= 2 else { throw invalid("expected …/master-name[/db], got '/\(path.joined(separator: "/"))'") }
            let sentinels = Sentinels(addresses: addresses, master: Self.percentDecoded(String(name)),
                                      username: query["sentinel_username"].map(Self.percentDecoded),
                                      password: query["sentinel_password"].map(Self.percentDecoded))
            self.init(endpoint: .sentinel(sentinels), username: username, password: password, database: database)
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
            var (host, port) = try hostAndPort(hostPort, defaultPort: 6379)
            if host.isEmpty { host = "127.0.0.1" }
            self.init(endpoint: .tcp(host: host, port: port), username: username, password: password, database: database)
        case "unix", "redis+unix":
            guard rest.hasPrefix("/") else { throw invalid("unix socket path must be absolute") }
            self.init(endpoint: .unix(path: String(rest)), username: username, password: password, database: database)
        case "rediss", "rediss-sentinel", "rediss-cluster":
            throw invalid("TLS (\(scheme)://) is not supported by this build; use a TLS-terminating proxy or a unix socket")
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
        case .sentinel(let sentinels):
            return "redis-sentinel://\(auth)\(sentinels.addresses.map(\.description).joined(separator: ","))/\(sentinels.master)/\(database)"
        case .cluster(let seeds):
            return "redis-cluster://\(auth)\(seeds.map(\.description).joined(separator: ","))"
        case .clusterSlot(let seeds, let key):
            return "redis-cluster://\(auth)\(seeds.map(\.description).joined(separator: ",")) (the primary of slot \(HashSlot.of(key)), key '\(key)')"
        }
    }

    /// Masks the passwords of a URL the user typed (the user info's, and a `sentinel_password`
    /// in the query), for error messages and logs.
    public static func masked(_ url: String) -> String {
        var url = url
        if let key = url.range(of: "sentinel_password=") {
            let end = url[key.upperBound...].firstIndex(of: "&") ?? url.endIndex
            url.replaceSubrange(key.upperBound..<end, with: "***")
        }
        let query = url.firstIndex(of: "?") ?? url.endIndex
        guard let schemeEnd = url.range(of: "://"), let at = url[schemeEnd.upperBound..<query].lastIndex(of: "@") else { return url }
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

/// Which primary serves each of a Redis Cluster's 16384 slots, and the replicas of each, from
/// `CLUSTER SHARDS` (Redis 7) or `CLUSTER SLOTS` (older servers).
public struct ClusterSlotMap: Sendable, Equatable {
    public typealias Address = RedisConfiguration.Address

    /// One primary with the slot ranges it serves and its replicas.
    public struct Shard: Sendable, Equatable {
        public var primary: Address
        public var replicas: [Address]
        public var slots: [ClosedRange<Int>]

        public init(primary: Address, replicas: [Address] = [], slots: [ClosedRange<Int>]) {
            (self.primary, self.replicas, self.slots) = (primary, replicas, slots)
        }
    }

    public private(set) var shards: [Shard]
    /// Slot → index into `shards`; -1 for a slot no primary serves (the cluster is down there).
    private var owners: [Int16]

    public init(shards: [Shard]) {
        self.shards = shards
        owners = [Int16](repeating: -1, count: HashSlot.count)
        for (index, shard) in shards.enumerated() {
            for range in shard.slots where range.lowerBound >= 0 && range.upperBound < HashSlot.count {
                for slot in range { owners[slot] = Int16(index) }
            }
        }
    }

    /// Routes `slot` to `primary` (as a `MOVED` reply names it) until the map is read again.
    public mutating func assign(slot: Int, to primary: Address) {
        guard (0..<HashSlot.count).contains(slot) else { return }
        if let index = shards.firstIndex(where: { $0.primary == primary }) {
            owners[slot] = Int16(index)
            if !shards[index].slots.contains(where: { $0.contains(slot) }) { shards[index].slots.append(slot...slot) }
        } else {
            shards.append(Shard(primary: primary, slots: [slot...slot]))
            owners[slot] = Int16(shards.count - 1)
        }
    }

    /// The primary serving `slot`; nil when none does.
    public func primary(forSlot slot: Int) -> Address? {
        guard (0..<HashSlot.count).contains(slot), owners[slot] >= 0 else { return nil }
        return shards[Int(owners[slot])].primary
    }

    /// The shard serving `slot`; nil when none does.
    public func shard(forSlot slot: Int) -> Shard? {
        guard (0..<HashSlot.count).contains(slot), owners[slot] >= 0 else { return nil }
        return shards[Int(owners[slot])]
    }

    /// Every primary that serves at least one slot.
    public var primaries: [Address] { shards.filter { !$0.slots.isEmpty }.map(\.primary) }

    /// Slots no primary serves.
    public var uncoveredSlots: Int { owners.filter { $0 < 0 }.count }

    /// Reads the map on one connection: `CLUSTER SHARDS`, or `CLUSTER SLOTS` from a server that
    /// does not know it (before 7.0). The one way the client layer asks a node for the map.
    static func read(from connection: RedisConnection) throws(RedisError) -> ClusterSlotMap {
        do {
            return try parse(shards: try connection.send(RedisCommand<RedisReply>.raw(["CLUSTER", "SHARDS"])))
        } catch where error.serverCode == .err && error.message.lowercased().contains("unknown subcommand") {
            return try parse(slots: try connection.send(RedisCommand<RedisReply>.raw(["CLUSTER", "SLOTS"])))
        }
    }

    /// The error to stop at when asking `node` for the map failed so that no other node can do
    /// better — it is no cluster node, or the credentials are refused —; nil when another may.
    static func stopAsking(after error: RedisError, from node: Address) -> RedisError? {
        if error.message.contains("cluster support disabled") {
            var refused = RedisError(kind: .invalidConfiguration, message: "\(node) is not in cluster mode (cluster-enabled no): use a redis:// URL for a single server", command: "CLUSTER SHARDS")
            refused.cause = error
            return refused
        }
        return error.kind == .authenticationFailed ? error : nil
    }

    /// Parses the reply of `CLUSTER SHARDS`: per shard a map with `slots` (pairs of bounds) and
    /// `nodes` (maps with `ip`/`endpoint`, `port`, `role`, `health`). Nodes that are not online
    /// are left out of the replicas; a shard without an online primary serves nothing.
    public static func parse(shards reply: RedisReply) throws(RedisError) -> ClusterSlotMap {
        guard case .array(let entries) = reply else { throw unexpected(reply, "CLUSTER SHARDS") }
        var shards: [Shard] = []
        for entry in entries {
            let fields = try map(entry, "CLUSTER SHARDS entry")
            guard case .array(let bounds)? = fields["slots"], case .array(let nodes)? = fields["nodes"] else { throw unexpected(entry, "CLUSTER SHARDS entry") }
            var slots: [ClosedRange<Int>] = []
            var index = 0
            while index + 1 < bounds.count {
                guard case .integer(let low) = bounds[index], case .integer(let high) = bounds[index + 1], low <= high else { throw unexpected(entry, "CLUSTER SHARDS slot range") }
                slots.append(Int(low)...Int(high))
                index += 2
            }
            var primary: Address?
            var replicas: [Address] = []
            for node in nodes {
                let fields = try map(node, "CLUSTER SHARDS node")
                guard let host = (fields["endpoint"]?.string).flatMap({ $0.isEmpty || $0 == "?" ? nil : $0 }) ?? fields["ip"]?.string,
                      case .integer(let port)? = fields["port"] else { throw unexpected(node, "CLUSTER SHARDS node") }
                let address = Address(host: host, port: Int(port))
                let online = fields["health"]?.string.map { $0 == "online" } ?? true
                switch fields["role"]?.string {
                case "master"? where online: primary = address
                case "replica"? where online: replicas.append(address)
                default: break
                }
            }
            if let primary { shards.append(Shard(primary: primary, replicas: replicas, slots: slots)) }
        }
        return ClusterSlotMap(shards: shards)
    }

    /// Parses the reply of `CLUSTER SLOTS`: per range `[start, end, [ip, port, id], [replica…]…]`.
    public static func parse(slots reply: RedisReply) throws(RedisError) -> ClusterSlotMap {
        guard case .array(let ranges) = reply else { throw unexpected(reply, "CLUSTER SLOTS") }
        var byPrimary: [Address: Shard] = [:]
        var order: [Address] = []
        for range in ranges {
            guard case .array(let parts) = range, parts.count >= 3, case .integer(let low) = parts[0], case .integer(let high) = parts[1], low <= high else {
                throw unexpected(range, "CLUSTER SLOTS range")
            }
            var nodes: [Address] = []
            for node in parts[2...] {
                guard case .array(let fields) = node, fields.count >= 2, let host = fields[0].string, case .integer(let port) = fields[1] else { throw unexpected(node, "CLUSTER SLOTS node") }
                nodes.append(Address(host: host, port: Int(port)))
            }
            let primary = nodes[0]
            if byPrimary[primary] == nil {
                byPrimary[primary] = Shard(primary: primary, replicas: Array(nodes.dropFirst()), slots: [])
                order.append(primary)
            }
            byPrimary[primary]?.slots.append(Int(low)...Int(high))
        }
        return ClusterSlotMap(shards: order.compactMap { byPrimary[$0] })
    }

    /// A flat `[name, value, name, value…]` reply (RESP2 maps) as a dictionary.
    private static func map(_ reply: RedisReply, _ what: String) throws(RedisError) -> [String: RedisReply] {
        guard case .array(let items) = reply, items.count % 2 == 0 else { throw unexpected(reply, what) }
        var fields: [String: RedisReply] = [:]
        var index = 0
        while index < items.count {
            guard let name = items[index].string else { throw unexpected(reply, what) }
            fields[name] = items[index + 1]
            index += 2
        }
        return fields
    }

    private static func unexpected(_ reply: RedisReply, _ what: String) -> RedisError {
        RedisError(kind: .unexpectedReply, message: "\(what) answered \(reply)", command: "CLUSTER")
    }
}

/// `INFO replication`, parsed: the server's role and, on a primary, the replicas connected to it
/// and how far each has read of the replication stream.
public struct ReplicationInfo: Sendable, Equatable {
    /// One `slaveN:` line of a primary.
    public struct Replica: Sendable, Equatable, CustomStringConvertible {
        public var address: String
        /// `online` once synchronised; `wait_bgsave`, `send_bulk` … while a full sync runs.
        public var state: String
        /// Bytes of the replication stream the replica has acknowledged.
        public var offset: Int64
        /// Seconds since its last acknowledgement.
        public var lagSeconds: Int

        public init(address: String, state: String, offset: Int64, lagSeconds: Int) {
            (self.address, self.state, self.offset, self.lagSeconds) = (address, state, offset, lagSeconds)
        }

        public var isOnline: Bool { state == "online" }

        public var description: String { "\(address) \(state) offset \(offset) lag \(lagSeconds) s" }
    }

    /// `master` or `slave`.
    public var role: String
    public var replicas: [Replica]
    /// How far the primary's replication stream goes (`master_repl_offset`).
    public var primaryOffset: Int64

    public init(role: String, replicas: [Replica], primaryOffset: Int64) {
        (self.role, self.replicas, self.primaryOffset) = (role, replicas, primaryOffset)
    }

    /// Parses the text `INFO replication` answers; lines it does not know are ignored.
    public init(parsing text: String) {
        role = ""
        replicas = []
        primaryOffset = 0
        for line in text.split(whereSeparator: \.isNewline) { // "\r\n" is one Character
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon]
            let value = line[line.index(after: colon)...]
            if name == "role" {
                role = String(value)
            } else if name == "master_repl_offset" {
                primaryOffset = Int64(value) ?? 0
            } else if name.hasPrefix("slave"), name.dropFirst(5).allSatisfy(\.isNumber), !name.dropFirst(5).isEmpty {
                var fields: [Substring: Substring] = [:]
                for pair in value.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { fields[parts[0]] = parts[1] }
                }
                replicas.append(Replica(address: "\(fields["ip"] ?? "?"):\(fields["port"] ?? "?")", state: String(fields["state"] ?? "?"),
                                        offset: fields["offset"].flatMap { Int64($0) } ?? 0, lagSeconds: fields["lag"].flatMap { Int($0) } ?? 0))
            }
        }
    }
}

extension RedisCommand where Value == ReplicationInfo {
    /// `INFO replication`, parsed.
    public static func replicationInfo() -> Self {
        Self(RedisArguments("INFO", ["replication"])) { reply throws(RedisError) in
            ReplicationInfo(parsing: try Decode.string(reply))
        }
    }
}

public import RedisClient
import TrafficModel

/// Why a batch is still waiting for its replicas (`--min-replica-acks`): the primary answers,
/// but `WAIT` counted fewer acknowledgements than required. Told apart from Redis being down
/// (`AggregatorHealth.redis`), from what the primary says of its replicas (`INFO replication`).
public struct ReplicaShortfall: Sendable, Equatable, CustomStringConvertible {
    public enum Cause: String, Sendable, Equatable {
        /// Fewer replicas are connected and synchronised than are required (none, or too few):
        /// start or reconnect a replica, or lower `--min-replica-acks`.
        case replicasMissing = "replicas-missing"
        /// Enough replicas are connected but did not acknowledge in time: they are behind
        /// (slow disk or network, a full sync running).
        case replicasLagging = "replicas-lagging"
        /// `INFO replication` could not be read, so the cause is not known.
        case unknown
    }

    public var required: Int
    /// The primary whose replicas fall short, on a cluster (nil: the one Redis).
    public var server: String?
    /// Replicas that acknowledged the batch.
    public var acknowledged: Int
    public var cause: Cause
    /// The replicas the primary reported (empty when unknown).
    public var replicas: [ReplicationInfo.Replica]
    /// How far the primary's replication stream goes, to compare with the replicas' offsets.
    public var primaryOffset: Int64?
    /// Why `INFO replication` could not be read, when the cause is unknown.
    public var infoProblem: String?
    /// Seconds the batches have waited for acknowledgements so far (nil: no batch waits, as in
    /// the operator's `stats`).
    public var waitedSeconds: Int?

    /// Classifies a shortfall of `acknowledged` of `required` from the primary's `info` (nil:
    /// it could not be read).
    public init(required: Int, acknowledged: Int, info: ReplicationInfo?) {
        self.required = required
        self.acknowledged = acknowledged
        replicas = info?.replicas ?? []
        primaryOffset = info?.primaryOffset
        guard let info else {
            cause = .unknown
            return
        }
        cause = info.replicas.filter(\.isOnline).count < required ? .replicasMissing : .replicasLagging
    }

    /// Asks `primary` (`INFO replication`) why `acknowledged` of `required` replicas took a
    /// write; when that cannot be read, the cause is unknown and says why. `server` names the
    /// primary on a cluster.
    public static func read(from primary: RedisClient, required: Int, acknowledged: Int, server: String? = nil) async -> ReplicaShortfall {
        var shortfall: ReplicaShortfall
        do throws(RedisError) {
            shortfall = ReplicaShortfall(required: required, acknowledged: acknowledged, info: try await primary.send(.replicationInfo()))
        } catch {
            shortfall = ReplicaShortfall(required: required, acknowledged: acknowledged, info: nil)
            shortfall.infoProblem = error.description
        }
        shortfall.server = server
        return shortfall
    }

    /// What the primary's `info` says of `required` replicas without a batch to wait for (the
    /// operator's `stats`): a replica counts when it is synchronised and acknowledged within the
    /// last second. nil when enough do.
    public static func assess(required: Int, info: ReplicationInfo) -> ReplicaShortfall? {
        let current = info.replicas.filter { $0.isOnline && $0.lagSeconds <= 1 }.count
        return current >= required ? nil : ReplicaShortfall(required: required, acknowledged: current, info: info)
    }

    public var connected: Int { replicas.filter(\.isOnline).count }

    public var description: String {
        var text = (server.map { "primary \($0): " } ?? "") + "\(acknowledged) of \(required) required replicas acknowledged"
        switch cause {
        case .replicasMissing where connected == 0:
            text += ": no replica connected to the primary" + (replicas.isEmpty ? "" : " and synchronised (\(seen))")
        case .replicasMissing:
            text += ": only \(connected) of \(required) replicas connected and synchronised (\(seen))"
        case .replicasLagging:
            text += ": replicas lagging (\(seen))"
        case .unknown:
            text += " (the primary's replicas could not be read" + (infoProblem.map { ": \($0)" } ?? "") + ")"
        }
        return text + (waitedSeconds.map { "; waiting \($0) s" } ?? "")
    }

    /// The replicas seen, each with how far it is behind the primary.
    private var seen: String {
        replicas.map { replica in
            "\(replica.address) \(replica.state)" + (primaryOffset.map { ", \(max(0, $0 - replica.offset)) bytes behind" } ?? "") + ", last ack \(replica.lagSeconds) s ago"
        }.joined(separator: "; ")
    }

    /// The `/healthz` object.
    public var json: String {
        let seen = replicas.map { #"{"address":\#(JSONText.quoted($0.address)),"state":\#(JSONText.quoted($0.state)),"offset":\#($0.offset),"lagSeconds":\#($0.lagSeconds)}"# }
        return #"{"server":\#(server.map(JSONText.quoted) ?? "null"),"required":\#(required),"acknowledged":\#(acknowledged),"connected":\#(connected),"cause":\#(JSONText.quoted(cause.rawValue)),"waitingSeconds":\#(waitedSeconds.map(String.init) ?? "null"),"primaryOffset":\#(primaryOffset.map(String.init) ?? "null"),"replicas":[\#(seen.joined(separator: ","))]}"#
    }
}

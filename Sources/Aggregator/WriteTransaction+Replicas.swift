public import RedisClient

/// Waiting for replicas (`--min-replica-acks`): `WAIT` right after a batch's `EXEC`, on the same
/// connection, and again on that connection while too few have acknowledged it.
extension WriteTransaction {
    /// A batch applied on the primary whose replicas have not all acknowledged it yet: wait for
    /// them on the connection that wrote it (`awaitReplicas`), rather than writing it again
    /// (which would publish it again).
    public struct PendingAcknowledgement: Sendable, Equatable {
        /// The connection that wrote the batch (`WAIT` counts its writes only).
        public var connection: UInt64
        /// Replicas that had acknowledged it.
        public var acknowledged: Int

        func error(_ settings: Settings) -> RedisError {
            RedisError(kind: .replicaAcknowledgement, message: "\(acknowledged) of \(settings.minimumReplicaAcks) required replicas acknowledged the batch within \(settings.replicaAckTimeout)", command: "WAIT")
        }
    }

    /// What `write` did: the outcome, and whether replicas still have to acknowledge it.
    public struct Written: Sendable {
        public var outcome: Outcome
        /// nil when acknowledged by `minimumReplicaAcks` replicas (or none are required).
        public var pending: PendingAcknowledgement?
        /// The connection that wrote it (`RedisConnection.serial`; nil when nothing was sent),
        /// for a `WAIT` after more writes on it.
        public var connection: UInt64?
    }

    /// Waits again for the replicas to acknowledge a written batch, on the connection that wrote
    /// it. Throws `.replicaAcknowledgement` while they still have not (the batch is on the
    /// primary: wait more), `.connectionLost` once that connection is gone (the primary may have
    /// died with it: write the batch again).
    public func awaitReplicas(_ pending: PendingAcknowledgement, on redis: RedisClient) async throws(RedisError) -> PendingAcknowledgement? {
        guard let wait = waitCommand else { return nil }
        let count = try await redis.send(wait, onConnection: pending.connection)
        if count >= settings.minimumReplicaAcks { return nil }
        return PendingAcknowledgement(connection: pending.connection, acknowledged: count)
    }

    /// `WAIT numreplicas timeout`, when replicas must acknowledge.
    var waitCommand: RedisCommand<Int>? {
        guard settings.minimumReplicaAcks > 0 else { return nil }
        return .wait(replicas: settings.minimumReplicaAcks, timeout: settings.replicaAckTimeout)
    }

    /// nil when `WAIT` counted enough replicas (or none are required), else how many it counted:
    /// the batch is on the primary only, not acknowledged.
    func replicaAcks(_ reply: RedisReply?) throws(RedisError) -> Int? {
        guard settings.minimumReplicaAcks > 0 else { return nil }
        switch reply {
        case .integer(let count)? where count >= settings.minimumReplicaAcks:
            return nil
        case .integer(let count)?:
            return Int(count)
        case .error(let message)?:
            throw RedisError(kind: .server, message: message, command: "WAIT")
        default:
            throw RedisError(kind: .unexpectedReply, message: "WAIT answered \(String(describing: reply))", command: "WAIT")
        }
    }
}

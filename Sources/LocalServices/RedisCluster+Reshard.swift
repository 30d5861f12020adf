public import RedisClient

extension RedisCluster {
    /// Moves one slot to another primary as `redis-cli --cluster reshard` does: `SETSLOT …
    /// IMPORTING` on the target, `MIGRATING` on the source, `MIGRATE` of its keys in pages (with
    /// `step` run between pages, so a test's traffic flows across the move), then `SETSLOT … NODE`
    /// on the target, the source and every other primary. Returns how many keys moved.
    @discardableResult
    public func moveSlot(_ slot: Int, to target: RedisConfiguration.Address, using redis: RedisClusterClient,
                         between step: () async throws -> Void = {}) async throws -> Int {
        try await redis.refresh()
        guard let source = redis.primary(forSlot: slot) else { throw LocalServiceError("no primary serves slot \(slot)") }
        guard source != target else { return 0 }
        let sourceID = try await redis.node(source).send(.raw(["CLUSTER", "MYID"])).string ?? ""
        let targetID = try await redis.node(target).send(.raw(["CLUSTER", "MYID"])).string ?? ""
        _ = try await redis.node(target).send(.raw(["CLUSTER", "SETSLOT", String(slot), "IMPORTING", sourceID]))
        _ = try await redis.node(source).send(.raw(["CLUSTER", "SETSLOT", String(slot), "MIGRATING", targetID]))
        var moved = 0
        while true {
            try await step()
            guard case .array(let names) = try await redis.node(source).send(.raw(["CLUSTER", "GETKEYSINSLOT", String(slot), "100"])), !names.isEmpty else { break }
            _ = try await redis.node(source).send(.raw(["MIGRATE", target.host, String(target.port), "", "0", "5000", "KEYS"] + names.compactMap(\.string)))
            moved += names.count
        }
        for primary in [target, source] + redis.primaries.filter({ $0 != source && $0 != target }) {
            _ = try await redis.node(primary).send(.raw(["CLUSTER", "SETSLOT", String(slot), "NODE", targetID]))
        }
        return moved
    }
}

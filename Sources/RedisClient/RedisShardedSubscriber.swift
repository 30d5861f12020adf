public import Logging
import Synchronization
import Backoff

/// Shard channels of a Redis Cluster (`SSUBSCRIBE`), each subscribed on a node that serves its
/// slot: the slot's primary, or with `readFromReplicas` one of its replicas (which deliver
/// `SPUBLISH` messages too, and spare the primaries the fan-out). One `RedisSubscriber` per node
/// in use, so a shard costs one connection however many channels it serves.
///
/// The placement follows the cluster. When a node refuses a channel (`MOVED`), drops it (its slot
/// moved away) or no longer serves its slot (checked against the map), only those channels are
/// interrupted: the handler hears `.shardChannelsLost`, then `.shardChannelsRestored` once they
/// are subscribed where they are served now — a reshard moving thousands of slots interrupts
/// each camera once, not every camera per slot. When a node's connection breaks (a failover) or
/// a subscription cannot be placed at all, the handler hears `.disconnected`, and `.reconnected`
/// once every channel is placed again. Messages published to a channel in between are not
/// delivered (pub/sub keeps nothing): the restored and reconnected events are the cue to read what
/// was missed, as after a reconnect of a single `RedisSubscriber`.
///
/// Changes are applied one at a time by one task, in the order asked; the handler is called on
/// the node subscribers' threads (keep it short). Shard channels have no pattern form.
public final class RedisShardedSubscriber: Sendable {
    public typealias Address = RedisConfiguration.Address

    let cluster: RedisClusterClient
    let readFromReplicas: Bool
    let logger: Logger
    let handler: @Sendable (RedisSubscriberEvent) -> Void
    private let placement: Placement
    private let work: AsyncStream<Work>.Continuation
    private let worker: Task<Void, Never>
    private let checker: Task<Void, Never>

    /// How long one node may take to confirm a subscription before it counts as failed (its
    /// subscriber is then closed and its channels placed again from a fresh slot map).
    static let confirmationTimeout: Duration = .seconds(3)
    /// Pauses between placement attempts while the cluster has no node for a channel (a
    /// failover takes `cluster-node-timeout` plus an election).
    static let repairPause = ReconnectBackoff.Policy(initialDelay: .milliseconds(100), maximumDelay: .seconds(2))

    private struct Node {
        let id: Int
        let subscriber: RedisSubscriber
    }

    private struct State {
        /// Every channel asked for and not released.
        var held: Set<String> = []
        /// Where each held channel is subscribed and confirmed.
        var placed: [String: Address] = [:]
        var nodes: [Address: Node] = [:]
        var nextNode = 0
        /// Nodes whose subscriber lost its connection.
        var down: Set<Address> = []
        /// `.disconnected` was reported and `.reconnected` not yet.
        var degraded = false
        /// Channels reported lost (`.shardChannelsLost`) and not restored yet.
        var interrupted: Set<String> = []
        var repairQueued = false
        var closed = false
    }

    private enum Work: Sendable {
        case subscribe([String], CheckedContinuation<Result<Void, RedisError>, Never>)
        case unsubscribe([String], CheckedContinuation<Result<Void, RedisError>, Never>)
        case repair
    }

    /// A subscriber for the cluster `configuration` names (`redis-cluster://`); nothing connects
    /// until the first subscription.
    ///
    /// Every `placementCheck` the slot map is read again and a channel whose node no longer
    /// serves its slot is moved (a replica of a primary that gave the slot away hears nothing
    /// and is told nothing).
    public init(configuration: RedisConfiguration, readFromReplicas: Bool = false, placementCheck: Duration = .seconds(5),
                logger: Logger = Logger(label: "redis.sharded-subscriber"), handler: @escaping @Sendable (RedisSubscriberEvent) -> Void) throws(RedisError) {
        cluster = try RedisClusterClient(configuration: configuration, label: "redis-cluster.subscriber", logger: logger)
        self.readFromReplicas = readFromReplicas
        self.logger = logger
        self.handler = handler
        let (stream, work) = AsyncStream<Work>.makeStream()
        self.work = work
        let placement = Placement(cluster: cluster, readFromReplicas: readFromReplicas, logger: logger, handler: handler, work: work)
        self.placement = placement
        worker = Task {
            for await item in stream { await placement.perform(item) }
        }
        checker = Task {
            while true {
                do {
                    try await Task.sleep(for: placementCheck)
                } catch {
                    return // cancelled: closing
                }
                await placement.checkPlacement()
            }
        }
    }

    /// Subscribes shard channels, each on a node serving its slot, and returns once every one is
    /// confirmed. A failure (no node serves the slot yet, a node did not answer) throws; the
    /// channels stay held and are placed as soon as the cluster allows, announced by
    /// `.reconnected`.
    public func subscribe(_ channels: [String]) async throws(RedisError) {
        if channels.isEmpty { return }
        try await submit { .subscribe(channels, $0) }
    }

    /// Stops delivery from shard channels; returns once their nodes confirmed it (a node that is
    /// gone is not waited for: its subscriber is closed).
    public func unsubscribe(_ channels: [String]) async throws(RedisError) {
        if channels.isEmpty { return }
        try await submit { .unsubscribe(channels, $0) }
    }

    /// The shard channels held (asked for and not released), placed or not.
    public var subscriptions: Set<String> { placement.state.withLock { $0.held } }

    /// Where each confirmed channel is subscribed now (node by channel).
    public var placed: [String: Address] { placement.state.withLock { $0.placed } }

    /// Stops every node subscriber and the slot-map client; pending requests fail with `.closed`.
    public func close() async {
        let nodes = placement.state.withLock { state -> [RedisSubscriber] in
            state.closed = true
            defer { state.nodes.removeAll() }
            return state.nodes.values.map(\.subscriber)
        }
        checker.cancel()
        work.finish()
        await worker.value
        for node in nodes { await node.close() }
        await cluster.close()
    }

    private func submit(_ make: (CheckedContinuation<Result<Void, RedisError>, Never>) -> Work) async throws(RedisError) {
        let result: Result<Void, RedisError> = await withCheckedContinuation { continuation in
            if case .terminated = work.yield(make(continuation)) {
                continuation.resume(returning: .failure(RedisError(kind: .closed, message: "the subscriber was closed")))
            }
        }
        try result.get()
    }

    /// The worker's side: applies one change at a time, so placements never interleave.
    private final class Placement: Sendable {
        let cluster: RedisClusterClient
        let readFromReplicas: Bool
        let logger: Logger
        let handler: @Sendable (RedisSubscriberEvent) -> Void
        let state = Mutex(State())
        let work: AsyncStream<Work>.Continuation

        init(cluster: RedisClusterClient, readFromReplicas: Bool, logger: Logger, handler: @escaping @Sendable (RedisSubscriberEvent) -> Void,
             work: AsyncStream<Work>.Continuation) {
            self.cluster = cluster
            self.readFromReplicas = readFromReplicas
            self.logger = logger
            self.handler = handler
            self.work = work
        }

        var closed: Bool { state.withLock { $0.closed } }

        func perform(_ item: Work) async {
            switch item {
            case .subscribe(let channels, let continuation):
                guard !closed else { return continuation.resume(returning: .failure(RedisError(kind: .closed, message: "the subscriber was closed"))) }
                state.withLock { $0.held.formUnion(channels) }
                let unplaced = state.withLock { state in channels.filter { state.placed[$0] == nil } }
                do throws(RedisError) {
                    try await place(unplaced, avoidReplicas: false)
                    continuation.resume(returning: .success(()))
                } catch {
                    if error.serverCode == .moved {
                        queueRepair() // the node's own report made them lost: restored once placed
                    } else {
                        degrade("shard channels could not be subscribed: \(error.message)")
                    }
                    continuation.resume(returning: .failure(error))
                }
            case .unsubscribe(let channels, let continuation):
                let byNode = state.withLock { state -> [Address: [String]] in
                    var byNode: [Address: [String]] = [:]
                    for channel in channels {
                        state.held.remove(channel)
                        if let node = state.placed.removeValue(forKey: channel) { byNode[node, default: []].append(channel) }
                    }
                    return byNode
                }
                for (address, names) in byNode {
                    guard let node = state.withLock({ $0.nodes[address] }) else { continue }
                    switch await awaitConfirmation(within: RedisShardedSubscriber.confirmationTimeout, { () async throws(RedisError) in try await node.subscriber.sunsubscribe(names) }) {
                    case .done, .closed: break
                    case .failed, .timedOut: await retire(address) // it holds them still: its subscriber goes
                    }
                }
                await closeIdleNodes()
                continuation.resume(returning: .success(()))
            case .repair:
                state.withLock { $0.repairQueued = false }
                await repair()
            }
        }

        /// Subscribes `channels` where the current slot map places them; throws at the first
        /// node that fails (what it did confirm stays placed).
        func place(_ channels: [String], avoidReplicas: Bool) async throws(RedisError) {
            if channels.isEmpty { return }
            if cluster.slotMap.primaries.isEmpty { try await cluster.refresh() }
            let map = cluster.slotMap
            var byNode: [Address: [String]] = [:]
            for channel in channels {
                let slot = HashSlot.of(channel)
                guard let shard = map.shard(forSlot: slot) else { throw RedisClusterClient.noOwner(slot, command: "SSUBSCRIBE") }
                let target = readFromReplicas && !avoidReplicas && !shard.replicas.isEmpty ? shard.replicas[slot % shard.replicas.count] : shard.primary
                byNode[target, default: []].append(channel)
            }
            for address in byNode.keys.sorted(by: { $0.description < $1.description }) {
                let names = byNode[address]!
                let subscriber = node(address)
                switch await awaitConfirmation(within: RedisShardedSubscriber.confirmationTimeout, { () async throws(RedisError) in try await subscriber.ssubscribe(names) }) {
                case .done:
                    state.withLock { state in
                        for name in names where state.held.contains(name) { state.placed[name] = address }
                    }
                case .closed:
                    throw RedisError(kind: .closed, message: "the subscriber was closed")
                case .failed(let error):
                    throw error // refused (MOVED): the node subscriber let them go; the map is read again
                case .timedOut:
                    await retire(address)
                    throw RedisError(kind: .timeout, message: "\(address) did not confirm SSUBSCRIBE within \(RedisShardedSubscriber.confirmationTimeout)", command: "SSUBSCRIBE")
                }
            }
        }

        /// Until every held channel is confirmed where the cluster serves it now: retires nodes
        /// that are down, reads the slot map, moves channels whose node changed, places the rest.
        func repair() async {
            var pauses = ReconnectBackoff(policy: RedisShardedSubscriber.repairPause)
            var attempt = 0
            while !closed {
                attempt += 1
                for address in state.withLock({ $0.down }) { await retire(address) }
                do throws(RedisError) {
                    try await cluster.refresh()
                    try await moveMisplaced()
                    let unplaced = state.withLock { state in state.held.filter { state.placed[$0] == nil }.sorted() }
                    // After a failed attempt, primaries only: a replica may be what failed.
                    try await place(unplaced, avoidReplicas: attempt > 1)
                    await closeIdleNodes()
                    announceRestored()
                    let (done, announce, count) = state.withLock { state -> (Bool, Bool, Int) in
                        guard state.down.isEmpty, state.held.allSatisfy({ state.placed[$0] != nil }) else { return (false, false, 0) }
                        defer {
                            state.degraded = false
                            state.interrupted = []
                        }
                        return (true, state.degraded, state.held.count)
                    }
                    if announce {
                        logger.notice("shard channels placed again", metadata: ["channels": "\(count)"])
                        handler(.reconnected)
                    }
                    if done { return }
                } catch {
                    logger.debug("shard channel placement not done; trying again", metadata: ["error": "\(error)"])
                }
                do {
                    try await Task.sleep(for: pauses.recordFailure())
                } catch {
                    return // cancelled: closing
                }
            }
        }

        /// Reads the map; when a placed channel's node no longer serves its slot, a repair moves it.
        func checkPlacement() async {
            guard !closed, !state.withLock({ $0.placed.isEmpty }) else { return }
            do throws(RedisError) {
                try await cluster.refresh()
            } catch {
                return // no map now: the next check, or a node's own report, tries again
            }
            let map = cluster.slotMap
            let misplaced = state.withLock { state in
                state.placed.filter { channel, address in
                    map.shard(forSlot: HashSlot.of(channel)).map { $0.primary != address && !$0.replicas.contains(address) } ?? true
                }.keys.sorted()
            }
            if !misplaced.isEmpty { interrupt(misplaced, reason: "their slots are served elsewhere now") }
        }

        /// Channels that stopped delivering while the rest go on (their slot moved): reported,
        /// and placed again by a repair.
        func interrupt(_ names: [String], reason: String) {
            let fresh = state.withLock { state -> [String] in
                let fresh = names.filter { state.held.contains($0) && !state.interrupted.contains($0) }
                state.interrupted.formUnion(fresh)
                return fresh
            }
            if !fresh.isEmpty {
                logger.notice("shard channels interrupted; placing them again", metadata: ["channels": "\(fresh.count)", "reason": "\(reason)"])
                handler(.shardChannelsLost(fresh, reason: reason))
            }
            queueRepair()
        }

        /// Reports the interrupted channels that are placed again.
        func announceRestored() {
            let restored = state.withLock { state -> [String] in
                // During an outage `.reconnected` covers every channel at once.
                guard !state.degraded else { return [] }
                let restored = state.interrupted.filter { state.placed[$0] != nil || !state.held.contains($0) }
                state.interrupted.subtract(restored)
                return restored.filter { state.held.contains($0) }.sorted()
            }
            if !restored.isEmpty {
                logger.notice("shard channels placed again", metadata: ["channels": "\(restored.count)"])
                handler(.shardChannelsRestored(restored))
            }
        }

        /// Channels confirmed on a node the fresh map no longer names for their slot: released
        /// there (or the node retired) so `place` subscribes them where they are served.
        private func moveMisplaced() async throws(RedisError) {
            let map = cluster.slotMap
            let misplaced = state.withLock { state -> [Address: [String]] in
                var byNode: [Address: [String]] = [:]
                for (channel, address) in state.placed {
                    guard let shard = map.shard(forSlot: HashSlot.of(channel)) else { continue }
                    if shard.primary != address && !shard.replicas.contains(address) { byNode[address, default: []].append(channel) }
                }
                for (_, names) in byNode { for name in names { state.placed[name] = nil } }
                return byNode
            }
            if !misplaced.isEmpty { interrupt(misplaced.values.flatMap { $0 }.sorted(), reason: "their slots are served elsewhere now") }
            for (address, names) in misplaced {
                guard let node = state.withLock({ $0.nodes[address] }) else { continue }
                switch await awaitConfirmation(within: RedisShardedSubscriber.confirmationTimeout, { () async throws(RedisError) in try await node.subscriber.sunsubscribe(names) }) {
                case .done, .closed: break
                case .failed, .timedOut: await retire(address)
                }
            }
        }

        /// The node's subscriber, made on first use. Its events reach the handler only while it is
        /// the current one for its address (a retired one may still be finishing).
        func node(_ address: Address) -> RedisSubscriber {
            state.withLock { state in
                if let node = state.nodes[address] { return node.subscriber }
                state.nextNode += 1
                let id = state.nextNode
                let subscriber = RedisSubscriber(configuration: RedisClusterClient.nodeConfiguration(address, cluster.configuration), logger: logger, handler: { [weak self] event in
                    self?.nodeEvent(event, from: address, id: id)
                }, onClose: nil, dropCounter: nil, threadName: "redis-ssub")
                state.nodes[address] = Node(id: id, subscriber: subscriber)
                return subscriber
            }
        }

        func nodeEvent(_ event: RedisSubscriberEvent, from address: Address, id: Int) {
            let current = state.withLock { $0.nodes[address]?.id == id && !$0.closed }
            guard current else { return }
            switch event {
            case .message, .subscribed, .unsubscribed, .shardChannelsRestored:
                handler(event)
            case .disconnected(let reason):
                state.withLock { _ = $0.down.insert(address) }
                degrade("\(address): \(reason)")
                queueRepair()
            case .reconnected:
                state.withLock { _ = $0.down.remove(address) }
                queueRepair()
            case .shardChannelsLost(let names, let reason):
                state.withLock { state in
                    for name in names where state.placed[name] == address { state.placed[name] = nil }
                }
                interrupt(names, reason: "\(address): \(reason)")
            }
        }

        /// Reports `.disconnected` once per outage.
        func degrade(_ reason: String) {
            let first = state.withLock { state -> Bool in
                defer { state.degraded = true }
                return !state.degraded && !state.closed
            }
            if first {
                logger.warning("shard channels interrupted; placing them again", metadata: ["reason": "\(reason)"])
                handler(.disconnected(reason))
            }
            queueRepair()
        }

        func queueRepair() {
            let queue = state.withLock { state -> Bool in
                defer { state.repairQueued = true }
                return !state.repairQueued && !state.closed
            }
            if queue { work.yield(.repair) }
        }

        /// Closes a node's subscriber; its channels are to be placed again.
        func retire(_ address: Address) async {
            let node = state.withLock { state -> Node? in
                state.down.remove(address)
                for (channel, node) in state.placed where node == address { state.placed[channel] = nil }
                return state.nodes.removeValue(forKey: address)
            }
            await node?.subscriber.close()
        }

        /// Closes subscribers of nodes that hold no channel any more.
        func closeIdleNodes() async {
            let idle = state.withLock { state -> [Node] in
                let used = Set(state.placed.values)
                let idle = state.nodes.filter { !used.contains($0.key) && !state.down.contains($0.key) }
                for address in idle.keys { state.nodes[address] = nil }
                return Array(idle.values)
            }
            for node in idle { await node.subscriber.close() }
        }
    }
}

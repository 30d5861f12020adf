import Durations
public import Regression
public import RedisClient
import ExperimentData

/// The pool's registry of live workers: each worker's entry (`PoolKeys.worker`, its
/// `WorkerStatus` as JSON) with a TTL of three heartbeats, renewed every beat. A worker without
/// an entry is taken for dead; `status` lists the entries.
public struct WorkerRegistry: Sendable {
    public var keys: PoolKeys
    /// How often a worker renews its entry.
    public var heartbeat: Duration

    public init(keys: PoolKeys, heartbeat: Duration) {
        self.keys = keys
        self.heartbeat = heartbeat
    }

    /// The entry's lifetime: three heartbeats (at least 300 ms).
    public var entryTTL: Duration { .milliseconds(max(300, (heartbeat * 3).wholeMilliseconds)) }

    /// Writes (or renews) the worker's entry.
    public func register(_ status: WorkerStatus, on redis: RedisClient) async throws(ExperimentError) {
        let json = try PoolJSON.encode(status.info, "the registry entry of \(status.name)")
        do { _ = try await redis.send(.set(keys.worker(status.name), json, expiry: .milliseconds(Int(clamping: entryTTL.wholeMilliseconds)))) } catch { throw .redis(error, "registering worker \(status.name)") }
    }

    /// Removes the worker's entry (it stops).
    public func deregister(_ name: String, on redis: RedisClient) async throws(ExperimentError) {
        do { _ = try await redis.send(.del([keys.worker(name)])) } catch { throw .redis(error, "deregistering worker \(name)") }
    }

    /// Whether `owner` is alive and says it runs the delivered task. A live worker that is on
    /// another task (or none) lost this one: its writes went with a Redis crash that kept the
    /// task's start but not its end, so nobody else would ever finish it. An entry that cannot
    /// be read counts as alive and busy (never take a live worker's task on a guess).
    public func isRunning(_ delivery: TaskDelivery, by owner: String, on redis: RedisClient) async throws(ExperimentError) -> Bool {
        let entry: [UInt8]?
        do { entry = try await redis.send(.get(keys.worker(owner))) } catch { throw .redis(error, "reading the registry entry of \(owner)") }
        guard let entry else { return false } // no heartbeat: dead
        do throws(ExperimentError) {
            let info = try PoolJSON.decode(PoolSnapshot.WorkerInfo.self, from: entry, "the registry entry of \(owner)")
            return info.currentTask == WorkerStatus.label(delivery.job, delivery.task.id)
        } catch {
            return true
        }
    }
}

import Foundation
import OwnThread
public import Regression
public import RedisClient
import ExperimentData
public import Backoff

/// Writes a job's final results exactly once: whoever holds the job's finaliser lock ranks the
/// task results and stores them with a script that checks the lock's token and that no final
/// results exist yet; its lease is extended while it works. Everyone else waits for the lock
/// and finds the results written.
public struct Finaliser: Sendable {
    public var keys: PoolKeys
    public var name: String
    public var lease: Duration = .seconds(10)
    /// How long to wait for another finaliser holding the lock.
    public var timeout: Duration = .seconds(120)
    /// The pauses between looks at a lock another finaliser holds.
    public var waitBackoff = ReconnectBackoff.Policy(initialDelay: .milliseconds(20), maximumDelay: .milliseconds(500))
    /// Called once when another finaliser holds the lock and this one starts waiting.
    public var onWait: @Sendable () -> Void = {}

    public init(keys: PoolKeys, name: String) {
        self.keys = keys
        self.name = name
    }

    /// What `finalise` did.
    public enum Outcome: Sendable {
        /// This finaliser wrote the final results (and ran `write` once).
        case written(GridResults)
        /// They were written before, by the finaliser named in them.
        case existing(GridResults)
    }

    static let storeScript = RedisScript("""
    if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
    if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
    redis.call('SET', KEYS[2], ARGV[2])
    return 1
    """)

    /// The job's final results, written now if nobody has; `write` (the files) runs only in the
    /// finaliser that stored them, while it still holds the lock, on a thread of its own (file
    /// writes block).
    public func finalise(job: String, on redis: RedisClient, write: @escaping @Sendable (GridResults) throws(ExperimentError) -> Void) async throws(ExperimentError) -> Outcome {
        let deadline = ContinuousClock.now + timeout
        var waiting = false
        var pauses = ReconnectBackoff(policy: waitBackoff)
        while true {
            if let existing = try await stored(job: job, on: redis) { return .existing(existing) }
            let lock = LeaseLock(key: keys.finaliserLock(job), lease: lease)
            if try await lock.acquire(on: redis) {
                return try await holding(lock, job: job, on: redis, write: write)
            }
            if !waiting {
                waiting = true
                onWait()
            }
            guard ContinuousClock.now < deadline else {
                throw ExperimentError(.timeout, "another finaliser has held \(keys.finaliserLock(job)) for over \(timeout)", hint: "try again later")
            }
            await PoolStop.sleep(pauses.recordFailure())
        }
    }

    private func holding(_ lock: LeaseLock, job: String, on redis: RedisClient, write: @escaping @Sendable (GridResults) throws(ExperimentError) -> Void) async throws(ExperimentError) -> Outcome {
        let renewals = Task {
            while !Task.isCancelled {
                await PoolStop.sleep(lock.lease / 3)
                guard !Task.isCancelled else { break }
                do throws(ExperimentError) {
                    if !(try await lock.extend(on: redis)) { break } // lost: the store script will refuse
                } catch {
                    continue // Redis away for a moment: the next renewal tries again within the lease
                }
            }
        }
        defer { renewals.cancel() }
        let results = try await rank(job: job, on: redis)
        let stored: RedisReply
        do {
            stored = try await redis.run(Self.storeScript, keys: [lock.key, keys.final(job)], arguments: [Array(lock.token.utf8), Array(results.encoded())])
        } catch {
            await releaseQuietly(lock, on: redis)
            throw ExperimentError.redis(error, "storing the final results of job \(job)").hinting("they may be stored: run results again, with --export to write the files")
        }
        switch stored {
        case .integer(1):
            do {
                try await onOwnThread { () throws(ExperimentError) in try write(results) }
            } catch {
                await releaseQuietly(lock, on: redis)
                throw error.hinting("the ranking is stored in Redis; write its files with `results \(job) --export --output DIR`")
            }
            renewals.cancel()
            try await lock.release(on: redis)
            return .written(results)
        case .integer(0):
            try await lock.release(on: redis)
            guard let existing = try await self.stored(job: job, on: redis) else { throw ExperimentError(.redis, "the final results of job \(job) vanished") }
            return .existing(existing)
        default:
            throw ExperimentError(.redis, "lost the finaliser lock of job \(job) before storing (lease \(lock.lease) ran out); run results again")
        }
    }

    /// Releases the lock after a failure that is being reported: should the release fail too,
    /// the lease runs out on its own and the failure reported stays the first one.
    private func releaseQuietly(_ lock: LeaseLock, on redis: RedisClient) async {
        do throws(ExperimentError) { try await lock.release(on: redis) } catch { return }
    }

    /// The stored final results, if any.
    public func stored(job: String, on redis: RedisClient) async throws(ExperimentError) -> GridResults? {
        let bytes: [UInt8]?
        do { bytes = try await redis.send(.get(keys.final(job))) } catch { throw .redis(error, "reading the final results of job \(job)") }
        return try bytes.map { bytes throws(ExperimentError) in try GridResults.decode(Data(bytes)) }
    }

    /// Ranks the job's task results as they are now.
    public func rank(job: String, on redis: RedisClient) async throws(ExperimentError) -> GridResults {
        let store = JobStore(keys: keys)
        guard let description = try await store.description(job: job, on: redis) else { throw ExperimentError(.parameter, "no job \(job) in \(keys.prefix) (see `status`)") }
        let states = try await store.states(job: job, on: redis)
        let hash: [String: [UInt8]]
        do { hash = try await redis.send(.hgetall(keys.results(job))) } catch { throw .redis(error, "reading the results of job \(job)") }
        var results: [TaskResult] = []
        for (task, json) in hash { results.append(try PoolJSON.decode(TaskResult.self, from: json, "\(keys.results(job)) field \(task)")) }
        return GridResults.rank(description, results: results, states: states, finaliser: name)
    }
}

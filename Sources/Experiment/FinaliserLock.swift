public import Foundation
import OwnThread
public import RedisClient

/// A lease lock in Redis: `SET key token NX PX lease` with a random token; only the owner
/// extends it (compare-and-`PEXPIRE`) or releases it (compare-and-`DEL`), both as scripts so the
/// check and the change are one step. A holder that stops renewing loses it after the lease.
public struct LeaseLock: Sendable {
    public let key: String
    public let token: String
    public let lease: Duration

    public init(key: String, lease: Duration, token: String = UUID().uuidString) {
        self.key = key
        self.lease = lease
        self.token = token
    }

    static let extendScript = RedisScript("""
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
    return 0
    """)
    static let releaseScript = RedisScript("""
    if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0
    """)

    var leaseMilliseconds: Int { max(1, Int(Worker.seconds(lease) * 1000)) }

    /// Takes the lock if nobody holds it.
    public func acquire(on redis: RedisClient) async throws(ExperimentError) -> Bool {
        do { return try await redis.send(.set(key, token, expiry: .milliseconds(leaseMilliseconds), onlyIfAbsent: true)) } catch { throw .redis(error, "taking the lock \(key)") }
    }

    /// Renews the lease; false when the lock is no longer ours.
    public func extend(on redis: RedisClient) async throws(ExperimentError) -> Bool {
        do {
            return try await redis.run(Self.extendScript, keys: [key], arguments: [Array(token.utf8), Array(String(leaseMilliseconds).utf8)]) == .integer(1)
        } catch {
            throw .redis(error, "extending the lock \(key)")
        }
    }

    /// Releases the lock if it is still ours; false when it was not (expired, taken over).
    @discardableResult
    public func release(on redis: RedisClient) async throws(ExperimentError) -> Bool {
        do { return try await redis.run(Self.releaseScript, keys: [key], arguments: [Array(token.utf8)]) == .integer(1) } catch { throw .redis(error, "releasing the lock \(key)") }
    }
}

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
                throw ExperimentError(.timeout, "another finaliser has held \(keys.finaliserLock(job)) for over \(timeout); try again later")
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    private func holding(_ lock: LeaseLock, job: String, on redis: RedisClient, write: @escaping @Sendable (GridResults) throws(ExperimentError) -> Void) async throws(ExperimentError) -> Outcome {
        let renewals = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: lock.lease / 3)
                guard !Task.isCancelled else { break }
                if (try? await lock.extend(on: redis)) == false { break } // lost: the store script will refuse
            }
        }
        defer { renewals.cancel() }
        let results = try await rank(job: job, on: redis)
        let stored: RedisReply
        do {
            stored = try await redis.run(Self.storeScript, keys: [lock.key, keys.final(job)], arguments: [Array(lock.token.utf8), Array(results.encoded())])
        } catch {
            _ = try? await lock.release(on: redis)
            var failure = ExperimentError.redis(error, "storing the final results of job \(job)")
            failure.message += " (they may be stored: run results again, with --export to write the files)"
            throw failure
        }
        switch stored {
        case .integer(1):
            do {
                try await onOwnThread { () throws(ExperimentError) in try write(results) }
            } catch {
                _ = try? await lock.release(on: redis)
                throw ExperimentError(error.kind, "\(error.message) — the ranking is stored in Redis; write its files with `results \(job) --export --output DIR`")
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
        let results = hash.values.compactMap { try? JSONDecoder().decode(PoolWorker.TaskResult.self, from: Data($0)) }
        return GridResults.rank(description, results: results, states: states, finaliser: name)
    }
}

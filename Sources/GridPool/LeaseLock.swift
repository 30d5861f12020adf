public import Foundation
import Durations
public import Regression
public import RedisClient
import ExperimentData

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

    var leaseMilliseconds: Int { Int(clamping: max(1, lease.wholeMilliseconds)) }

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

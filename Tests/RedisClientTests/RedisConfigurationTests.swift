import Testing
@testable import RedisClient
import Backoff

@Suite struct RedisConfigurationTests {
    @Test func parsesTCPURLWithUserPasswordAndDatabase() throws {
        let config = try RedisConfiguration(url: "redis://alice:s%40cret@db.example:6380/3")
        #expect(config.endpoint == .tcp(host: "db.example", port: 6380))
        #expect(config.username == "alice")
        #expect(config.password == "s@cret")
        #expect(config.database == 3)
        #expect(config.description == "redis://alice:***@db.example:6380/3")
    }

    @Test func parsesPasswordOnlyAndDefaults() throws {
        let config = try RedisConfiguration(url: "redis://:pw@localhost")
        #expect(config.endpoint == .tcp(host: "localhost", port: 6379))
        #expect(config.username == nil)
        #expect(config.password == "pw")
        #expect(config.database == 0)
    }

    @Test func parsesUnixSockets() throws {
        #expect(try RedisConfiguration(url: "unix:///run/redis.sock?db=2") == RedisConfiguration(endpoint: .unix(path: "/run/redis.sock"), database: 2))
        #expect(try RedisConfiguration(url: "/tmp/r.sock").endpoint == .unix(path: "/tmp/r.sock"))
    }

    @Test func parsesIPv6() throws {
        #expect(try RedisConfiguration(url: "redis://[::1]:7000").endpoint == .tcp(host: "::1", port: 7000))
    }

    @Test(arguments: [
        ("http://x:1", "unknown scheme"),
        ("redis://host:99999", "port '99999'"),
        ("redis://host:1/x", "database 'x'"),
        ("localhost:6379", "expected redis://"),
        ("rediss://host", "TLS"),
    ])
    func rejectsBadURLsNamingThePart(url: String, fragment: String) {
        #expect {
            _ = try RedisConfiguration(url: url)
        } throws: { error in
            let e = error as! RedisError
            return e.kind == .invalidConfiguration && e.message.contains(fragment)
        }
    }

    @Test func masksPasswordsInURLs() {
        #expect(RedisConfiguration.masked("redis://u:secret@h:1") == "redis://u:***@h:1")
        #expect(RedisConfiguration.masked("redis://secret@h:1") == "redis://***@h:1")
        #expect(RedisConfiguration.masked("redis://h:1") == "redis://h:1")
    }
}

@Suite struct ReconnectBackoffTests {
    @Test func growsExponentiallyUpToTheCap() {
        var backoff = ReconnectBackoff(policy: .init(initialDelay: .milliseconds(100), maximumDelay: .seconds(1), multiplier: 2, jitter: 0))
        let delays = (0..<6).map { _ in backoff.recordFailure(random: 0.5) }
        #expect(delays == [.milliseconds(100), .milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)])
        #expect(backoff.failures == 6)
        backoff.recordSuccess()
        #expect(backoff.recordFailure(random: 0.5) == .milliseconds(100))
    }

    @Test func jitterStaysWithinItsBandAndUnderTheCap() {
        var low = ReconnectBackoff(policy: .init(initialDelay: .milliseconds(100), maximumDelay: .seconds(1), jitter: 0.2))
        var high = low
        #expect(low.recordFailure(random: 0) == .milliseconds(80))
        #expect(high.recordFailure(random: 0.999999) <= .milliseconds(120))
        var capped = ReconnectBackoff(policy: .init(initialDelay: .seconds(5), maximumDelay: .seconds(1), jitter: 0.5))
        #expect(capped.recordFailure(random: 0.99) <= .seconds(1))
    }
}

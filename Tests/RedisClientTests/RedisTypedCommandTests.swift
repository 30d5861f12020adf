import Testing
import TestSupport
@testable import RedisClient

/// The typed commands that replaced raw argument lists: their arguments and their decoded replies,
/// against a real redis-server.
@Suite struct RedisTypedCommandTests {
    @Test func hashesSetOnceIncrementAndReadSeveralFields() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let hash = uniqueName("job")
        #expect(try await client.send(.hset(hash, [("tasks", "3"), ("queued", "3")])) == 2)
        #expect(try await client.send(.hsetnx(hash, field: "announced", "worker-a")) == true)
        #expect(try await client.send(.hsetnx(hash, field: "announced", "worker-b")) == false, "set once")
        #expect(try await client.send(.hget(hash, field: "announced")) == Array("worker-a".utf8))
        #expect(try await client.send(.hincrby(hash, field: "queued", by: -1)) == 2)
        #expect(try await client.send(.hincrby(hash, field: "done", by: 1)) == 1, "a missing field counts from 0")
        #expect(try await client.send(.hmget(hash, fields: ["tasks", "queued", "done", "failed"])) == [Array("3".utf8), Array("2".utf8), Array("1".utf8), nil])
        #expect(RedisCommand<Bool>.hsetnx("k", field: "f", "v").arguments.parts.map { String(decoding: $0, as: UTF8.self) } == ["HSETNX", "k", "f", "v"])
    }

    @Test func sortedSetsRankScoreAndRemove() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let jobs = uniqueName("jobs")
        let millis = 1_729_416_600_123.0
        #expect(try await client.send(.zadd(jobs, [(score: millis, member: "a"), (score: millis + 1, member: "b")])) == 2)
        #expect(try await client.send(.zadd(jobs, score: 0.5, member: "c")) == 1)
        #expect(try await client.send(.zadd(jobs, score: millis + 2, member: "a")) == 0, "a score update adds nothing")
        #expect(try await client.send(.zscore(jobs, member: "a")) == millis + 2, "integral scores keep every digit")
        #expect(try await client.send(.zscore(jobs, member: "c")) == 0.5)
        #expect(try await client.send(.zscore(jobs, member: "nobody")) == nil)
        #expect(try await client.send(.zrevrange(jobs, start: 0, stop: 1)) == ["a", "b"])
        #expect(try await client.send(.zrange(jobs, start: 0, stop: -1)) == ["c", "b", "a"])
        #expect(try await client.send(.zrem(jobs, members: ["a", "nobody"])) == 1)
        #expect(try await client.send(.zrevrange(jobs, start: 0, stop: 9)) == ["b", "c"])
        #expect(scoreArgument(millis) == "1729416600123" && scoreArgument(-2) == "-2" && scoreArgument(0.25) == "0.25")
        #expect(scoreArgument(.infinity) == "inf" && scoreArgument(-.infinity) == "-inf")
    }

    @Test func pendingEntriesAreListedClaimedAndDeleted() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let stream = uniqueName("tasks"), group = "pool"
        try await client.send(.xgroupCreate(stream, group: group, id: "0"))
        var ids: [String] = []
        for i in 0..<3 { ids.append(try await client.send(.xadd(stream, fields: [RedisStreamField("task", "\(i)")]))) }
        _ = try await client.send(.xreadgroup(group: group, consumer: "w1", stream: stream, count: 2))
        _ = try await client.send(.xreadgroup(group: group, consumer: "w2", stream: stream, count: 1))

        let summary = try await client.send(.xpendingSummary(stream, group: group))
        #expect(summary == RedisPendingSummary(count: 3, smallestID: ids[0], largestID: ids[2], consumers: ["w1": 2, "w2": 1]))
        let all = try await client.send(.xpending(stream, group: group, count: 10))
        #expect(all.map(\.id) == ids && all.map(\.consumer) == ["w1", "w1", "w2"] && all.allSatisfy { $0.deliveries == 1 })
        let holder = try await client.send(.xpending(stream, group: group, start: ids[2], end: ids[2], count: 1))
        #expect(holder.map(\.consumer) == ["w2"], "who holds one entry")
        #expect(try await client.send(.xpending(stream, group: group, count: 10, consumer: "w2")).map(\.id) == [ids[2]])
        #expect(try await client.send(.xpending(stream, group: group, count: 10, minIdle: .seconds(3600))).isEmpty, "nothing idle an hour")

        // JUSTID moves the entry and keeps its delivery count; a plain claim counts one more.
        #expect(try await client.send(.xclaimJustID(stream, group: group, consumer: "w2", ids: [ids[0]])) == [ids[0]])
        let claimed = try await client.send(.xclaim(stream, group: group, consumer: "w2", ids: [ids[1]]))
        #expect(claimed.map(\.id) == [ids[1]] && claimed[0]["task"] == Array("1".utf8))
        let after = try await client.send(.xpending(stream, group: group, count: 10))
        #expect(after.map(\.consumer) == ["w2", "w2", "w2"] && after.map(\.deliveries) == [1, 2, 1])
        #expect(try await client.send(.xclaim(stream, group: group, consumer: "w1", minIdle: .seconds(3600), ids: [ids[2]])).isEmpty, "not idle long enough")

        #expect(try await client.send(.xdel(stream, ids: [ids[0], "9-9"])) == 1)
        #expect(try await client.send(.xlen(stream)) == 2)
        let idle = uniqueName("idle")
        try await client.send(.xgroupCreate(idle, group: group, id: "0"))
        #expect(try await client.send(.xpendingSummary(idle, group: group)) == RedisPendingSummary(count: 0, smallestID: nil, largestID: nil, consumers: [:]))
    }

    @Test func serverClockAndReplicaWait() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let time = try await client.send(.time())
        #expect(time.seconds > 1_700_000_000 && (0..<1_000_000).contains(time.microseconds))
        // No replicas: WAIT answers 0 once its timeout passed.
        _ = try await client.send(.set(uniqueName("w"), "x"))
        #expect(try await client.send(.wait(replicas: 0, timeout: .milliseconds(10))) == 0)
        let arguments = { (timeout: Duration?) in RedisCommand<Int>.wait(replicas: 1, timeout: timeout).arguments.parts.map { String(decoding: $0, as: UTF8.self) } }
        #expect(arguments(.microseconds(10)) == ["WAIT", "1", "1"], "below a millisecond is not 'for ever'")
        #expect(arguments(.seconds(2)) == ["WAIT", "1", "2000"])
        #expect(arguments(nil) == ["WAIT", "1", "0"])
    }

    @Test func typedCommandsQueueInsideATransaction() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let job = uniqueName("job"), jobs = uniqueName("jobs"), tasks = uniqueName("tasks")
        let result = try await client.transaction(watching: [job], reads: RedisPipeline()) { _ throws(RedisError) in
            ([RedisCommand.hset(job, [("queued", "1")]).arguments,
              RedisCommand.hincrby(job, field: "queued", by: 1).arguments,
              RedisCommand.xadd(tasks, fields: [RedisStreamField("job", job)]).arguments,
              RedisCommand.zadd(jobs, score: 7, member: job).arguments], ())
        }
        let replies = try #require(result).replies
        #expect(replies.count == 4 && replies[0] == .integer(1) && replies[1] == .integer(2) && replies[3] == .integer(1))
        #expect(try await client.send(.zscore(jobs, member: job)) == 7)
    }
}

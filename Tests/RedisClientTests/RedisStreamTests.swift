import Testing
import TestSupport
@testable import RedisClient

@Suite struct RedisStreamTests {
    @Test func twoConsumerGroupsEachReceiveEveryEntry() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let stream = uniqueName("tasks_stream")
        try await client.send(.xgroupCreate(stream, group: "group_rf", id: "0"))
        try await client.send(.xgroupCreate(stream, group: "group_lr", id: "0"))
        var ids: [String] = []
        for i in 0..<50 {
            ids.append(try await client.send(.xadd(stream, fields: [RedisStreamField("feature_values", "[\(i)]"), RedisStreamField("target", "\(i * 2)")])))
        }
        #expect(try await client.send(.xlen(stream)) == 50)
        #expect(try await client.send(.xrange(stream, count: 3)).map(\.id) == Array(ids.prefix(3)))

        for group in ["group_rf", "group_lr"] {
            var seen: [RedisStreamEntry] = []
            while true {
                let batch = try await client.send(.xreadgroup(group: group, consumer: "w1", stream: stream, count: 20))
                if batch.isEmpty { break }
                seen += batch
                #expect(try await client.send(.xack(stream, group: group, ids: batch.map(\.id))) == batch.count)
            }
            #expect(seen.map(\.id) == ids, "\(group) sees every entry in order")
            #expect(seen[7]["target"] == Array("14".utf8))
        }
    }

    @Test func busyGroupThenSetIDReplaysFromTheStart() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let stream = uniqueName("tasks_stream")
        try await client.send(.xgroupCreate(stream, group: "g", id: "$"))
        for i in 0..<3 { _ = try await client.send(.xadd(stream, fields: [RedisStreamField("n", "\(i)")])) }
        _ = try await client.send(.xreadgroup(group: "g", consumer: "c", stream: stream, noAck: true))
        await #expect {
            try await client.send(.xgroupCreate(stream, group: "g", id: "$"))
        } throws: { ($0 as! RedisError).serverCode == .busyGroup }
        try await client.send(.xgroupSetID(stream, group: "g", id: "0"))
        let replay = try await client.send(.xreadgroup(group: "g", consumer: "c", stream: stream))
        #expect(replay.count == 3)
    }

    @Test func autoclaimTakesOverUnacknowledgedEntries() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let stream = uniqueName("tasks_stream")
        try await client.send(.xgroupCreate(stream, group: "g", id: "0"))
        for i in 0..<5 { _ = try await client.send(.xadd(stream, fields: [RedisStreamField("n", "\(i)")])) }
        // Worker A reads everything and dies before acknowledging.
        let taken = try await client.send(.xreadgroup(group: "g", consumer: "A", stream: stream))
        #expect(taken.count == 5)
        // Nothing new for B, and entries idle for less than min-idle are not claimable yet.
        #expect(try await client.send(.xreadgroup(group: "g", consumer: "B", stream: stream)).isEmpty)
        let early = try await client.send(.xautoclaim(stream, group: "g", consumer: "B", minIdle: .seconds(60)))
        #expect(early.entries.isEmpty)
        var first: RedisAutoClaim?
        try await waitUntil("A's entries are idle for 50 ms") {
            first = try await client.send(.xautoclaim(stream, group: "g", consumer: "B", minIdle: .milliseconds(50), count: 2))
            return first?.entries.count == 2
        }
        #expect(first?.entries.map(\.id) == Array(taken.prefix(2).map(\.id)))
        let rest = try await client.send(.xautoclaim(stream, group: "g", consumer: "B", minIdle: .milliseconds(50), start: first!.nextCursor))
        #expect(rest.entries.map(\.id) == Array(taken.suffix(3).map(\.id)))
        #expect(rest.nextCursor == "0-0")
        #expect(try await client.send(.xack(stream, group: "g", ids: taken.map(\.id))) == 5)
    }

    @Test func approximateMaxLengthTrims() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let stream = uniqueName("history")
        for i in 0..<1_000 {
            _ = try await client.send(.xadd(stream, trim: .approximateMaxLength(100), fields: [RedisStreamField("n", "\(i)")]))
        }
        let length = try await client.send(.xlen(stream))
        #expect(length >= 100 && length < 1_000)
        _ = try await client.send(.xadd(stream, trim: .exactMaxLength(10), fields: [RedisStreamField("n", "last")]))
        #expect(try await client.send(.xlen(stream)) == 10)
    }
}

import Synchronization
import Testing
import TestSupport
@testable import RedisClient

@Suite struct RedisCommandTests {
    @Test func stringsKeysAndExpiry() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let key = uniqueName("k")
        #expect(try await client.send(.ping()) == "PONG")
        #expect(try await client.send(.get(key)) == nil)
        #expect(try await client.send(.set(key, "v1")) == true)
        #expect(try await client.send(.set(key, "v2", onlyIfAbsent: true)) == false)
        #expect(try await client.send(.get(key)) == Array("v1".utf8))
        try await client.send(.setex(key + ":ttl", seconds: 300, Array("x".utf8)))
        // The server took the expiry: a time to live of at most 300 s, not yet run out, and no
        // expiry where none was asked for (TTL -1).
        let ttl = try await client.send(.raw(["PTTL", key + ":ttl"]))
        guard case .integer(let milliseconds) = ttl else { Issue.record("PTTL reply \(ttl)"); return }
        #expect((1...300_000).contains(milliseconds), "PTTL \(milliseconds) ms after SETEX 300")
        #expect(try await client.send(.raw(["TTL", key])) == .integer(-1))
        #expect(try await client.send(.set(key + ":px", "y", expiry: .milliseconds(60_000))) == true)
        let pttl = try await client.send(.raw(["PTTL", key + ":px"]))
        guard case .integer(let left) = pttl else { Issue.record("PTTL reply \(pttl)"); return }
        #expect((1...60_000).contains(left), "PTTL \(left) ms after SET PX 60000")
        #expect(try await client.send(.mget([key, key + ":missing", key + ":ttl"])) == [Array("v1".utf8), nil, Array("x".utf8)])
        #expect(try await client.send(.exists([key, key + ":missing"])) == 1)
        #expect(try await client.send(.del([key, key + ":ttl", key + ":px"])) == 3)
        #expect(try await client.send(.exists([key])) == 0)
        // Binary-safe values, including NUL and invalid UTF-8.
        let binary: [UInt8] = [0, 255, 13, 10, 0xC3]
        #expect(try await client.send(.set(key, binary)) == true)
        #expect(try await client.send(.get(key)) == binary)
    }

    @Test func listsHashesScanAndInfo() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let list = uniqueName("alerts")
        for i in 0..<5 { _ = try await client.send(.lpush(list, [Array("a\(i)".utf8)])) }
        #expect(try await client.send(.llen(list)) == 5)
        try await client.send(.ltrim(list, start: 0, stop: 2))
        #expect(try await client.send(.lrange(list, start: 0, stop: -1)).map { String(decoding: $0, as: UTF8.self) } == ["a4", "a3", "a2"])

        let hash = uniqueName("h")
        #expect(try await client.send(.hset(hash, [("a", Array("1".utf8)), ("b", Array("2".utf8))])) == 2)
        #expect(try await client.send(.hget(hash, field: "b")) == Array("2".utf8))
        #expect(try await client.send(.hget(hash, field: "zz")) == nil)
        #expect(try await client.send(.hgetall(hash)) == ["a": Array("1".utf8), "b": Array("2".utf8)])

        let prefix = uniqueName("scan")
        for i in 0..<120 { _ = try await client.send(.set("\(prefix):\(i)", "v")) }
        var cursor: UInt64 = 0
        var seen = Set<String>()
        repeat {
            let page = try await client.send(.scan(cursor: cursor, match: "\(prefix):*", count: 50))
            seen.formUnion(page.keys)
            cursor = page.cursor
        } while cursor != 0
        #expect(seen.count == 120)
        let walked = try await client.keys(matching: "\(prefix):*", pageSize: 7)
        #expect(walked.count == 120 && Set(walked) == seen, "the whole walk, each key once")
        #expect(try await client.keys(matching: "\(prefix)-none:*").isEmpty)
        #expect(try await client.send(.lpos("\(prefix):list", "x")) == nil)
        _ = try await client.send(.lpush("\(prefix):list", [Array("y".utf8), Array("x".utf8)]))
        #expect(try await client.send(.lpos("\(prefix):list", "y")) == 1)
        let replication = try await client.send(.replicationInfo())
        #expect(replication.role == "master" && replication.replicas.isEmpty)

        let info = try await client.send(.info("memory"))
        #expect(info.contains("used_memory:"))
    }

    @Test func serverErrorsAreTypedAndKeepTheConnection() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let key = uniqueName("wrongtype")
        _ = try await client.send(.lpush(key, [[1]]))
        await #expect {
            _ = try await client.send(.get(key))
        } throws: { error in
            let e = error as! RedisError
            return e.kind == .server && e.serverCode == .wrongType && e.command == "GET" && e.description.contains("GET")
        }
        #expect(try await client.send(.ping()) == "PONG")
        #expect(client.statistics.connectionsLost == 0)
    }

    @Test func tenThousandPipelinedCommandsInOneRoundTrip() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let prefix = uniqueName("pipe")
        var writes = RedisPipeline(capacity: 10_000)
        for i in 0..<5_000 {
            writes.append(.setex("\(prefix):\(i)", seconds: 300, Array("value-\(i)".utf8)))
            writes.append(.lpush("\(prefix):list", [Array("\(i)".utf8)]))
        }
        let writeReplies = try await client.execute(writes)
        #expect(writeReplies.count == 10_000)
        for i in 0..<5_000 {
            #expect(writeReplies[2 * i] == .status("OK"))
            #expect(writeReplies[2 * i + 1] == .integer(Int64(i + 1)))
        }
        var reads = RedisPipeline()
        var commands: [RedisCommand<[UInt8]?>] = []
        for i in 0..<10_000 {
            let command = RedisCommand<[UInt8]?>.get("\(prefix):\(i)")
            commands.append(command)
            reads.append(command)
        }
        let readReplies = try await client.execute(reads)
        for i in 0..<10_000 {
            let value = try commands[i].value(from: readReplies[i])
            #expect(value == (i < 5_000 ? Array("value-\(i)".utf8) : nil), "GET \(prefix):\(i)")
        }
        // An error reply inside a pipeline stays in its slot; the rest still succeed.
        var mixed = RedisPipeline()
        mixed.append(.get("\(prefix):0"))
        mixed.append(.get("\(prefix):list"))
        mixed.append(.ping())
        let replies = try await client.execute(mixed)
        #expect(replies[0] == .bulk(Array("value-0".utf8)))
        guard case .error(let message) = replies[1] else { Issue.record("expected WRONGTYPE, got \(replies[1])"); return }
        #expect(RedisError.ServerCode(errorReply: message) == .wrongType, "\(message)")
        #expect(replies[2] == .status("PONG"))
    }

    @Test func scriptsLoadOnDemandAndSurviveScriptFlush() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        let key = uniqueName("counter")
        #expect(try await client.run(script, keys: [key], arguments: [Array("5".utf8)]) == .integer(5))
        _ = try await client.send(.raw(["SCRIPT", "FLUSH"]))
        // NOSCRIPT now: the client loads the script again and retries once.
        #expect(try await client.run(script, keys: [key], arguments: [Array("2".utf8)]) == .integer(7))
    }

    @Test func commandTimeoutDropsTheConnectionAndRecovers() async throws {
        let server = try await RedisServer(extraArguments: ["--enable-debug-command", "yes"])
        var config = server.configuration
        config.commandTimeout = .milliseconds(200)
        config.reconnect = .init(initialDelay: .milliseconds(1), maximumDelay: .milliseconds(5))
        let client = try await RedisClient.connect(configuration: config)
        await #expect {
            _ = try await client.send(.raw(["DEBUG", "SLEEP", "1"]))
        } throws: { ($0 as! RedisError).kind == .timeout }
        try await waitUntil("the client works again after the timeout", timeout: .seconds(5)) {
            (try? await client.send(.ping())) == "PONG" // try?: failing until it recovers is what is waited out
        }
        // Pings sent while DEBUG SLEEP still blocks the server time out too.
        #expect(client.statistics.connectionsLost >= 1)
    }

    @Test func connectsOverUnixSocketAndSelectsDatabase() async throws {
        let socketPath = "/tmp/\(uniqueName("redis")).sock"
        let server = try await RedisServer(extraArguments: ["--unixsocket", socketPath, "--unixsocketperm", "700"])
        let client = try await RedisClient.connect(configuration: RedisConfiguration(url: "unix://\(socketPath)?db=4"))
        let key = uniqueName("db4")
        #expect(try await client.send(.set(key, "here")) == true)
        let other = try await RedisClient.connect(configuration: server.configuration)
        #expect(try await other.send(.get(key)) == nil, "db 0 must not see db 4's key")
        _ = try await other.send(.select(4))
        #expect(try await other.send(.get(key)) == Array("here".utf8))
    }

    @Test func shutdownStopsTheServer() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        try await client.shutdownServer()
        try await waitUntil("redis-server exited", timeout: .seconds(5)) { !RedisServer.ping(port: server.port) }
    }

    @Test func transactionAppliesOnlyWhenWatchedKeysStayUnchanged() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let key = uniqueName("counter")
        _ = try await client.send(.set(key, "1"))
        var reads = RedisPipeline()
        reads.append(.get(key))

        // Unchanged: the commands run atomically and their replies come back in order.
        let applied = try await client.transaction(watching: [key], reads: reads) { replies throws(RedisError) in
            let current = Int(replies[0].string ?? "") ?? 0
            return ([RedisArguments(["SET", key, String(current + 1)]), RedisArguments(["GET", key])], current)
        }
        #expect(applied?.value == 1)
        #expect(applied?.replies == [.status("OK"), .bulk(Array("2".utf8))])

        // Another client changes the watched key between the reads and EXEC: nothing is applied.
        let other = Mutex(try RedisConnection(configuration: server.configuration))
        let aborted = try await client.transaction(watching: [key], reads: reads) { replies throws(RedisError) in
            _ = try other.withLock { connection throws(RedisError) in try connection.send(RedisArguments(["SET", key, "100"])) }
            return ([RedisArguments(["SET", key, "3"]), RedisArguments(["SET", key + ":side", "x"])], 0)
        }
        #expect(aborted == nil)
        #expect(try await client.send(.get(key)) == Array("100".utf8))
        #expect(try await client.send(.get(key + ":side")) == nil)

        // Nothing to write: the watch is released, so a later change does not abort the next one.
        let empty = try await client.transaction(watching: [key], reads: reads) { _ throws(RedisError) in ([], "none") }
        #expect(empty?.replies == [] && empty?.value == "none")
        _ = try other.withLock { connection throws(RedisError) in try connection.send(RedisArguments(["SET", key, "5"])) }
        let after = try await client.transaction(watching: [], reads: RedisPipeline()) { _ throws(RedisError) in ([RedisArguments(["INCR", key])], ()) }
        #expect(after?.replies == [.integer(6)])

        // A command Redis refuses to queue aborts the whole transaction with its own error.
        do {
            _ = try await client.transaction(watching: [key], reads: reads) { _ throws(RedisError) in
                ([RedisArguments(["SET", key, "7"]), RedisArguments(["SET", key])], ())
            }
            Issue.record("a transaction with a malformed command must throw")
        } catch {
            #expect(error.kind == .server && error.message.contains("wrong number of arguments"))
            #expect(error.command == "SET")
        }
        #expect(try await client.send(.get(key)) == Array("6".utf8))
    }
}

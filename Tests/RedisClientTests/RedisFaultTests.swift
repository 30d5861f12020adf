import Testing
import TestSupport
@testable import RedisClient

@Suite struct RedisFaultTests {
    @Test func reconnectsAfterTheServerIsKilledAndRestarted() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let key = uniqueName("k")
        #expect(try await client.send(.set(key, "before")) == true)
        server.kill()
        await #expect {
            _ = try await client.send(.get(key))
        } throws: { error in
            let e = error as! RedisError
            return e.kind == .connectionLost || e.kind == .connectionFailed
        }
        // While the server is down calls fail fast, announcing the next attempt.
        do {
            _ = try await client.send(.ping())
            Issue.record("PING succeeded with the server down")
        } catch {
            #expect(error.isTransient)
        }
        try await server.start()
        try await waitUntil("the client reconnected", timeout: .seconds(10)) {
            (try? await client.send(.ping())) == "PONG" // try?: failing until it recovers is what is waited out
        }
        #expect(client.statistics.reconnects == 1)
        #expect(client.statistics.connectionsLost == 1)
        #expect(try await client.send(.get(key)) == nil, "the restarted server has no persistence")
    }

    @Test func connectionRefusedIsAClearError() async throws {
        let port = try FreePort.find()
        await #expect {
            _ = try await RedisClient.connect(configuration: RedisConfiguration(url: "redis://127.0.0.1:\(port)"))
        } throws: { error in
            let e = error as! RedisError
            return e.kind == .connectionFailed && e.description.contains("127.0.0.1:\(port)") && e.description.contains("check that redis-server is running")
        }
    }

    @Test func wrongPasswordIsAnAuthenticationError() async throws {
        let server = try await RedisServer(extraArguments: ["--requirepass", "right"])
        await #expect {
            _ = try await RedisClient.connect(configuration: RedisConfiguration(url: "redis://:wrong@127.0.0.1:\(server.port)"))
        } throws: { error in
            let e = error as! RedisError
            return e.kind == .authenticationFailed && !e.description.contains("wrong") && e.description.contains("***")
        }
        let noAuth = RedisClient(configuration: try RedisConfiguration(url: server.url))
        await #expect {
            _ = try await noAuth.send(.get("k"))
        } throws: { ($0 as! RedisError).serverCode == .noAuth }
        let client = try await RedisClient.connect(configuration: RedisConfiguration(url: "redis://:right@127.0.0.1:\(server.port)"))
        #expect(try await client.send(.ping()) == "PONG")
    }

    @Test func aclUserAuthenticates() async throws {
        let server = try await RedisServer(extraArguments: ["--user", "default", "off", "--user", "aggregator", "on", ">pa55", "~*", "&*", "+@all"])
        let client = try await RedisClient.connect(configuration: RedisConfiguration(url: "redis://aggregator:pa55@127.0.0.1:\(server.port)"))
        #expect(try await client.send(.set(uniqueName("acl"), "ok")) == true)
        await #expect {
            _ = try await RedisClient.connect(configuration: RedisConfiguration(url: "redis://aggregator:nope@127.0.0.1:\(server.port)"))
        } throws: { ($0 as! RedisError).kind == .authenticationFailed }
    }
}

import Foundation
import RedisClient
import Testing
import TestSupport
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool
#if canImport(Glibc)
import Glibc
#endif

/// `--start-redis` and `--shutdown-redis`: only a Redis this tool started is ever shut down.
@Suite struct LocalRedisTests {
    @Test func aForeignRedisIsUsedButNeverShutDown() async throws {
        let foreign = try await RedisServer()
        let local = LocalRedis(port: foreign.port)
        #expect(try await local.ensureRunning() == .alreadyRunning(ours: false))
        let (done, reason) = await local.shutdownIfOwned()
        #expect(!done && reason.contains("not started by traffic-experiment"))
        let redis = try await RedisClient.connect(configuration: foreign.configuration)
        #expect(try await redis.send(.ping()) == "PONG", "still running")
        // Someone else's record under the owner key does not make it ours either.
        _ = try await redis.send(.set(LocalRedis.ownerKey, "someone-else"))
        #expect(await local.isOurs() == false)
        await redis.close()
        foreign.stop()
    }

    @Test func aRedisItStartedIsShutDown() async throws {
        let port = try FreePort.find()
        let local = LocalRedis(port: port)
        guard case .started = try await local.ensureRunning() else { Issue.record("not started"); return }
        #expect(await local.isOurs())
        #expect(try await local.ensureRunning() == .alreadyRunning(ours: true))
        let (done, _) = await local.shutdownIfOwned()
        #expect(done)
        try await waitUntil("the port is free again", timeout: .seconds(10)) {
            if case .nothing = await local.probe() { return true }
            return false
        }
    }

    @Test func somethingElseOnThePortIsNotUsed() async throws {
        // A listening socket that is not Redis: connections are accepted but never answered.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        listen(fd, 8)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
        let port = Int(UInt16(bigEndian: address.sin_port))
        do {
            _ = try await LocalRedis(port: port).ensureRunning()
            Issue.record("used a port that is not Redis")
        } catch {
            #expect(error.message.contains("not Redis"), "\(error.message)")
        }
    }

    @Test func aChildProcessInheritsOnlyItsStandardDescriptors() async throws {
        // This process holds many descriptors (Redis connections, pipes of other tests); none
        // may leak into a worker or a redis-server it starts.
        let lines = TestSupport.Collector<String>()
        let child = try ChildProcess("ls", ["/proc/self/fd"], searchPath: true, output: .lines { lines.append($0) })
        #expect(try await child.wait(timeout: .seconds(10)) == 0)
        // Ended means reaped and its output read to the end: every line is in.
        // 0, 1, 2 and the directory ls itself opened.
        #expect(Set(lines.values.filter { !$0.isEmpty }) == ["0", "1", "2", "3"], "\(lines.values)")
    }
}

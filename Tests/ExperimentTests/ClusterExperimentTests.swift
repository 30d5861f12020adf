import Foundation
import RedisClient
import Testing
import TestSupport
@testable import ExperimentPipeline
@testable import GridPool

/// `traffic-experiment` and the grid pool on a `redis-cluster://` URL (issue 22): each lives
/// under one hash tag (the stream's name, the pool's prefix), so its multi-key steps stay in one
/// slot, and its connections follow that slot's primary across a failover.
@Suite(.serialized) struct ClusterExperimentTests {
    @Test func anExperimentRunsOnAClusterUnderItsStreamsTag() async throws {
        let cluster = try await RedisCluster()
        defer { cluster.stop() }
        let redis = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let stream = uniqueName("exp")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("out")).path
        let (status, text) = try await ExperimentProcessTests.run(["run", "--csv", Fixtures.path("friedman_small.csv"), "--target", "target", "--redis-url", cluster.url,
                                                                    "--stream", stream, "--algorithms", "lr,svr", "--output", output])
        #expect(status == 0, "\(text)")
        #expect(FileManager.default.fileExists(atPath: output + "/training_results.json"), "\(text)")
        let keys = try await redis.keys(matching: "*\(stream)*")
        #expect(!keys.isEmpty && keys.allSatisfy { $0.hasPrefix("{\(stream)}") }, "every name carries the stream's tag: \(keys)")
        #expect(Set(keys.map(HashSlot.of)).count == 1, "one slot")
        await redis.close()
    }

    @Test func aGridJobFinishesAcrossAFailoverOfThePoolsPrimary() async throws {
        let cluster = try await RedisCluster()
        defer { cluster.stop() }
        let prefix = uniqueName("pool")
        let keys = PoolKeys(prefix: "{\(prefix)}")
        let routing = try await RedisClusterClient.connect(configuration: cluster.configuration)
        let redis = try await RedisClient.connect(configuration: cluster.configuration.pinned(toSlotOf: keys.jobs))
        let common = ["--redis-url", cluster.url, "--pool-prefix", prefix]
        // A worker joins first and waits on the pool's task streams on its primary.
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("cluster-worker") + ".log").path
        let worker = try ChildProcess("/usr/bin/nice", ["-n", "10", ExperimentProcessTests.binary, "worker", "--pool", "--name", "cw", "--idle-timeout", "60", "--heartbeat", "0.5"] + common,
                                      output: .appendToFile(log))
        try await waitUntil("the worker registered", timeout: .seconds(60), every: .milliseconds(20)) {
            (try? await redis.send(.exists([keys.worker("cw")]))) == 1 // try?: not readable yet is "not yet"
        }
        // The pool's primary hands over to its replica (as in a rolling upgrade): the worker's
        // connections are refused with MOVED there and find the new primary.
        let slot = HashSlot.of(keys.jobs)
        let primary = try #require(routing.primary(forSlot: slot))
        let replica = try #require(routing.slotMap.shard(forSlot: slot)?.replicas.first)
        _ = try await routing.node(replica).send(.raw(["CLUSTER", "FAILOVER"]))
        try await waitUntil("the replica took over the pool's slot", timeout: .seconds(60), every: .milliseconds(50)) {
            try? await routing.refresh() // try?: read again until a node answers
            return routing.primary(forSlot: slot) == replica
        }
        #expect(primary != replica)
        // Only now the job: the worker gets its tasks from the new primary.
        let grid = Fixtures.temporaryCSV(#"{"svr": {"C": [0.5, 1, 2]}, "lr": {}}"#, name: "grid.json")
        let (created, job) = try await ExperimentProcessTests.run(["grid", "--csv", Fixtures.path("friedman_small.csv"), "--grid", grid, "--folds", "3", "--quiet"] + common)
        #expect(created == 0, "\(job)")
        let id = job.trimmingCharacters(in: .whitespacesAndNewlines)
        let store = JobStore(keys: keys)
        // This test's own client was on the old primary: its first command there is refused
        // (MOVED) and it reconnects to the new one.
        try await waitUntil("the job is readable", timeout: .seconds(30)) { (try? await store.counts(job: id, on: redis))?.tasks == 12 } // try?: MOVED once
        try await waitUntil("the job finished on the new primary", timeout: .seconds(180), every: .milliseconds(100)) {
            (try? await store.counts(job: id, on: redis))?.isFinished ?? false // try?: the client reconnects meanwhile
        }
        let states = try await store.states(job: id, on: redis)
        #expect(states.count == 12 && states.values.allSatisfy { $0.state == .done }, "\(states.filter { $0.value.state != .done })")
        let output = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("results")).path
        let (status, text) = try await ExperimentProcessTests.run(["results", id, "--wait", "60", "--output", output] + common)
        #expect(status == 0 && FileManager.default.fileExists(atPath: output + "/grid_\(id)_results.json"), "\(text)")
        let written = try await routing.keys(matching: "*\(prefix)*")
        #expect(written.allSatisfy { $0.hasPrefix("{\(prefix)}") } && Set(written.map(HashSlot.of)).count == 1, "the pool lives in one slot: \(written.prefix(5))")
        worker.signal(SIGTERM)
        _ = try? await worker.wait(timeout: .seconds(20)) // try?: a stuck worker fails nothing here; it is killed with the cluster
        await redis.close()
        await routing.close()
    }
}

import Foundation
import KafkaClient
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Aggregator
import Simulation

/// The aggregator on a Redis Cluster (issue 22): each camera written on its slot's primary,
/// results published to shard channels, the guarantees of one server kept per camera.
@Suite(.serialized) struct ClusterAggregatorTests {
    @Test func aBatchIsWrittenCameraByCameraOnEveryPrimaryExactlyOnce() async throws {
        let rig = try await ClusterRig(cameras: 24, results: 3_000, seed: 22) { $0.batchSize = 300 }
        while !rig.allProduced { try await rig.produceMore(1_000, pause: .zero) }
        // Written twice by two services one after the other (the second as after a crash before
        // any commit): every effect once.
        for round in 0..<2 {
            var run = rig.configuration
            if round == 1 { run.group = uniqueName("group-again") }
            let service = try rig.service(run, label: "round\(round)")
            let running = Task { try await service.run() }
            try await waitUntil("round \(round): every result in its camera's history", timeout: .seconds(90), every: .milliseconds(100)) {
                try await rig.total(round == 0 ? "offset" : "redelivered_skipped") == rig.frames.count
            }
            service.requestStop()
            try await running.value
        }
        #expect(try await rig.expectExactlyOnce().count == 3, "the cameras were written on every primary")
        // Shard channels, not PUBLISH (which every node of a cluster would carry): PUBLISH only
        // announces each camera once, at its first result.
        var spublished = 0
        var published = 0
        func calls(_ command: String, in info: String) -> Int {
            guard let line = info.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("cmdstat_\(command):") }) else { return 0 }
            return line.split(separator: ",").first?.split(separator: "=").last.flatMap { Int($0) } ?? 0
        }
        for (_, info) in try await rig.redis.sendToEach(.info("commandstats")) {
            spublished += calls("spublish", in: info)
            published += calls("publish", in: info)
        }
        #expect(spublished == rig.frames.count, "one SPUBLISH per result, none for the redeliveries")
        #expect(published == rig.perCamera.count, "one announcement per camera: \(published)")
        await rig.close()
    }

    /// A live camera's slot migrated to another primary mid-stream (`SETSLOT … IMPORTING` /
    /// `MIGRATING`, `MIGRATE`, `SETSLOT … NODE`): its writes wait out `ASK`/`TRYAGAIN`, follow
    /// `MOVED` to the new owner, and its history stays exactly once and gap-free.
    @Test func aLiveCamerasSlotMigratedMidStreamLosesAndRepeatsNothing() async throws {
        let rig = try await ClusterRig(cameras: 8, results: 2_400, seed: 23)
        let redis = rig.redis
        let watch = try await ClusterGatewayWatch(rig)
        let moving = 3
        let named = try await watch.watch([moving, 5])
        let everyCamera = try await watch.watch(nil)
        // A second gateway subscribes on the replicas: the source's replica stops serving the slot
        // too, and the subscription must follow it to the target's replica.
        let replicaWatch = try await ClusterGatewayWatch(rig, readFromReplicas: true)
        let onReplica = try await replicaWatch.watch([moving])
        let service = try rig.service(label: "migrate")
        let running = Task { try await service.run() }
        try await waitUntil("camera \(moving) is being written", timeout: .seconds(60), every: .milliseconds(5)) {
            try await rig.produceMore()
            return try await rig.applied(moving) > 20
        }
        // Move the camera's slot while results keep coming.
        let slot = HashSlot.of(rig.keys.position(moving))
        let source = try #require(redis.primary(forSlot: slot))
        let target = try #require(redis.primaries.first { $0 != source })
        let before = try await rig.applied(moving)
        let moved = try await rig.cluster.moveSlot(slot, to: target, using: redis) { try await rig.produceMore() }
        #expect(moved >= 4, "the camera's keys moved (\(moved))")
        while !rig.allProduced { try await rig.produceMore() }
        try await waitUntil("every result applied", timeout: .seconds(90), every: .milliseconds(50)) { try await rig.total() == rig.frames.count }
        service.requestStop()
        try await running.value
        try await redis.refresh()
        #expect(redis.primary(forSlot: slot) == target)
        #expect(try await rig.applied(moving) > before, "the camera was written on its new primary too")
        try await rig.expectExactlyOnce()
        // Browsers watching the moved camera (by name and through "*") saw every result.
        let totals = rig.perCamera
        for camera in [moving, 5] { try await watch.expectEveryResultOrGap(named, camera: camera, total: totals[camera] ?? 0) }
        for (camera, results) in totals { try await watch.expectEveryResultOrGap(everyCamera, camera: camera, total: results) }
        try await replicaWatch.expectEveryResultOrGap(onReplica, camera: moving, total: totals[moving] ?? 0)
        await watch.stop()
        await replicaWatch.stop()
        await rig.close()
    }

    /// Two aggregators in one group on a cluster, the second joining mid-stream and leaving
    /// again: every camera's results once, whichever member wrote them. A browser watches every
    /// camera from before any exists: each is announced by the aggregator (the gateway's scan is
    /// an hour away) and delivered from its first result.
    @Test func twoAggregatorsInOneGroupApplyEveryResultOnce() async throws {
        let rig = try await ClusterRig(cameras: 12, results: 6_000, partitions: 8, seed: 25)
        let watch = try await ClusterGatewayWatch(rig, discovery: .seconds(3600))
        let everyCamera = try await watch.watch(nil)
        func consumed(_ service: AggregatorService) -> Double {
            String(decoding: service.metrics.render(), as: UTF8.self).split(separator: "\n")
                .first { $0.hasPrefix("aggregator_messages_consumed_total ") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
        }
        let first = try rig.service(label: "first")
        let firstRun = Task { try await first.run() }
        try await waitUntil("the first member writes", timeout: .seconds(60), every: .milliseconds(5)) {
            try await rig.produceMore(pause: .milliseconds(25))
            return consumed(first) > 0
        }
        let second = try rig.service(label: "second")
        let secondRun = Task { try await second.run() }
        try await waitUntil("the second member took partitions and writes", timeout: .seconds(90), every: .milliseconds(5)) {
            if rig.next < rig.frames.count * 3 / 4 { try await rig.produceMore(20, pause: .milliseconds(25)) }
            return consumed(second) > 0
        }
        for _ in 0..<5 { try await rig.produceMore(pause: .milliseconds(25)) }
        second.requestStop() // leaves with a batch in flight while messages keep arriving
        while !rig.allProduced { try await rig.produceMore(200, pause: .milliseconds(25)) }
        try await secondRun.value
        try await waitUntil("every result applied", timeout: .seconds(120), every: .milliseconds(100)) { try await rig.total() == rig.frames.count }
        first.requestStop()
        try await firstRun.value
        try await rig.expectExactlyOnce()
        for (camera, results) in rig.perCamera { try await watch.expectEveryResultOrGap(everyCamera, camera: camera, total: results) }
        #expect(watch.gaps(everyCamera) == 0, "nothing was lost: no gap notice")
        await watch.stop()
        await rig.close()
    }

    @Test func aBracedNamespaceIsRefusedAtStart() async throws {
        var config = AggregatorConfiguration()
        config.redisURL = "redis-cluster://127.0.0.1:7000"
        config.keys = KeySchema(namespace: "{prod}:")
        do {
            _ = try AggregatorService(configuration: config, bootstrap: "127.0.0.1:9")
            Issue.record("a braced namespace accepted on a cluster")
        } catch let error as RedisError {
            #expect(error.kind == .invalidConfiguration && error.message.contains("contains '{' or '}'"), "\(error)")
        }
    }

    /// A primary SIGKILLed mid-stream with `--min-replica-acks 1`: its replica is promoted, the
    /// aggregator finds it through the other nodes, and what it had acknowledged was on the
    /// replica — every result once, every alert once, gap-free, `latest` the newest.
    @Test func aPrimaryKilledMidStreamIsFollowedToItsPromotedReplica() async throws {
        let rig = try await ClusterRig(cameras: 9, results: 2_700, seed: 24) {
            $0.minimumReplicaAcks = 1
            $0.replicaAckTimeout = .milliseconds(500)
        }
        let redis = rig.redis
        // The detections are on the replicas too before a primary dies.
        for (_, acks) in try await redis.sendToEach(.raw(["WAIT", "1", "5000"])) { #expect(acks == .integer(1)) }
        let victimCamera = 4
        let watch = try await ClusterGatewayWatch(rig)
        let named = try await watch.watch([victimCamera])
        let everyCamera = try await watch.watch(nil)
        let service = try rig.service(label: "kill")
        let running = Task { try await service.run() }
        try await waitUntil("camera \(victimCamera) is being written", timeout: .seconds(60), every: .milliseconds(5)) {
            try await rig.produceMore()
            return try await rig.applied(victimCamera) > 30
        }
        let slot = HashSlot.of(rig.keys.position(victimCamera))
        // The stream goes on while the cluster fails over.
        let (victim, _) = try await rig.killPrimary(of: victimCamera)
        // The promoted replica has no replica of its own, so `WAIT 1` there waits until the dead
        // node comes back (a restarted container) and rejoins as its replica; /healthz says so.
        let promoted = try #require(redis.primary(forSlot: slot))
        try await waitUntil("the wait is reported for the promoted primary", timeout: .seconds(60), every: .milliseconds(20)) {
            try await rig.produceMore()
            guard let shortfall = service.health.replicas else { return false }
            return shortfall.server == promoted.description && shortfall.cause == .replicasMissing && service.health.redis
        }
        try await victim.start()
        while !rig.allProduced { try await rig.produceMore() }
        try await waitUntil("every result applied", timeout: .seconds(120), every: .milliseconds(100)) {
            (try? await rig.total()) == rig.frames.count // try?: a camera still on its way to a new primary counts as not yet
        }
        service.requestStop()
        try await running.value
        try await rig.expectExactlyOnce()
        // The browsers were told the stream broke, and then got every result (what the dead
        // primary had acknowledged was on its replica), or a gap notice for what was not.
        let totals = rig.perCamera
        try await watch.expectEveryResultOrGap(named, camera: victimCamera, total: totals[victimCamera] ?? 0)
        for (camera, results) in totals { try await watch.expectEveryResultOrGap(everyCamera, camera: camera, total: results) }
        #expect(watch.clients.objects(named).contains { $0["type"] as? String == "status" && $0["redis"] as? String == "down" }, "the interruption was announced")
        await watch.stop()
        await rig.close()
    }

    /// The aggregator and the gateway as operators run them — processes on a `redis-cluster://`
    /// URL — while a primary is SIGKILLed (its replica promoted, the node restarted) and the
    /// aggregator is SIGKILLed and restarted: every result once, alerts once, `latest` the newest,
    /// and a browser on `"*"` saw every result of every camera or a gap notice.
    @Test func theProcessesOnAClusterRideOutAPrimaryAndTheAggregatorKilled() async throws {
        let rig = try await ClusterRig(cameras: 9, results: 2_700, seed: 26)
        let bin = URL(fileURLWithPath: AggregatorProcessTests.binary).deletingLastPathComponent()
        func log(_ name: String) -> String { FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName(name) + ".log").path }
        let gatewayPort = try FreePort.find()
        let gateway = try ChildProcess(bin.appendingPathComponent("traffic-gateway").path, [
            "run", "--port", String(gatewayPort), "--redis-url", rig.cluster.url, "--namespace", rig.keys.namespace,
            "--camera-discovery-seconds", "0.3", "--max-queue-bytes", String(64 << 20),
        ], output: .appendToFile(log("cluster-gateway")))
        try await waitUntil("the gateway process is healthy", timeout: .seconds(30)) { (try? await httpGet(port: gatewayPort, path: "/healthz"))?.status == 200 } // try?: not listening yet
        let clients = try WebSocketTestClients(port: gatewayPort)
        let everyCamera = try await clients.watch(nil)
        let aggregatorLog = log("cluster-aggregator")
        func aggregator() throws -> ChildProcess {
            try ChildProcess(AggregatorProcessTests.binary, [
                "run", "--kafka-bootstrap", rig.kafka.bootstrapServers, "--topic", rig.configuration.topic, "--dlq-topic", rig.configuration.deadLetterTopic,
                "--group", rig.configuration.group, "--redis-url", rig.cluster.url, "--namespace", rig.keys.namespace,
                "--alert-list-length", "10000", "--history-length", "10000", "--batch-size", "100", "--metrics-port", String(try FreePort.find()), "--metrics-host", "127.0.0.1",
                "-X", "fetch.wait.max.ms=10", "-X", "session.timeout.ms=6000", "-X", "heartbeat.interval.ms=500",
            ], output: .appendToFile(aggregatorLog))
        }
        var process = try aggregator()
        let victimCamera = 4
        try await waitUntil("camera \(victimCamera) is being written", timeout: .seconds(60), every: .milliseconds(5)) {
            try await rig.produceMore()
            return try await rig.applied(victimCamera) > 30
        }
        // The browser's gateway has found the camera and follows its shard channel on the primary
        // about to die.
        try await waitUntil("the '*' browser gets camera \(victimCamera) live", timeout: .seconds(60), every: .milliseconds(20)) {
            try await rig.produceMore()
            return !clients.stream(everyCamera, camera: victimCamera).offsets.isEmpty
        }
        let (victim, _) = try await rig.killPrimary(of: victimCamera)
        for _ in 0..<5 { try await rig.produceMore() }
        process.signal(SIGKILL) // with writes in flight, offsets uncommitted
        _ = try await process.wait(timeout: .seconds(30))
        try await victim.start()
        process = try aggregator()
        while !rig.allProduced { try await rig.produceMore() }
        try await waitUntil("every result applied", timeout: .seconds(120), every: .milliseconds(100)) {
            (try? await rig.total()) == rig.frames.count // try?: a camera still on its way to a new primary counts as not yet
        }
        process.signal(SIGTERM)
        #expect(try await process.wait(timeout: .seconds(60)) == 0)
        try await rig.expectExactlyOnce()
        for (camera, results) in rig.perCamera { try await clients.expectEveryResultOrGap(everyCamera, camera: camera, total: results) }
        #expect(clients.objects(everyCamera).contains { $0["type"] as? String == "status" && $0["redis"] as? String == "down" }, "the primary's death was announced")
        clients.stop()
        gateway.signal(SIGTERM)
        #expect(try await gateway.wait(timeout: .seconds(30)) == 0)
        await rig.close()
    }
}

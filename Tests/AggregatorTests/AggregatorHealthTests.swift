import Foundation
import KafkaClient
import RedisClient
import Testing
@testable import Aggregator

/// The aggregator's health on its own: no broker, no Redis, no HTTP server.
@Suite struct AggregatorHealthTests {
    static func stall(_ partition: Int32, lag: Int64 = 5, seconds: Int64 = 42) -> PartitionProgress.Stall {
        PartitionProgress.Stall(partition: KafkaTopicPartition(topic: "results", partition: partition), lag: lag, waited: .seconds(seconds))
    }

    @Test func readyOnlyWithKafkaAndRedisUpAndNothingStalled() {
        let metrics = AggregatorMetrics()
        let health = AggregatorHealth(redisRequired: true, metrics: metrics)
        #expect(health.snapshot().reasons == ["Kafka brokers unreachable", "Redis: unreachable"], "nothing answered yet")
        health.kafka(up: true)
        health.redis(up: true)
        let up = health.snapshot()
        #expect(up.ready && up.reasons.isEmpty)
        #expect(up.json == #"{"ready":true,"kafka":true,"redis":true,"stalled":[]}"#)
        let rendered = String(decoding: metrics.render(), as: UTF8.self)
        #expect(rendered.contains("aggregator_kafka_up 1") && rendered.contains("aggregator_redis_up 1"), "the gauges follow")

        health.redis(up: false, RedisError(kind: .connectionLost, message: "server closed the connection"))
        let down = health.snapshot()
        #expect(!down.ready && !down.redis)
        #expect(down.reasons == ["Redis: connectionLost: server closed the connection"])
        #expect(down.json == #"{"ready":false,"kafka":true,"redis":false,"stalled":[],"reason":"Redis: connectionLost: server closed the connection"}"#)
        #expect(String(decoding: metrics.render(), as: UTF8.self).contains("aggregator_redis_up 0"))

        health.redis(up: true)
        #expect(health.snapshot().redisProblem == nil, "a write that succeeds again clears the reason")
    }

    static let infoWithReplicas = "# Replication\r\nrole:master\r\nconnected_slaves:2\r\nslave0:ip=10.0.0.5,port=6380,state=online,offset=900,lag=0\r\nslave1:ip=10.0.0.6,port=6380,state=wait_bgsave,offset=0,lag=3\r\nmaster_repl_offset:1000\r\n"

    @Test func replicationInfoIsParsed() {
        let info = ReplicationInfo(parsing: Self.infoWithReplicas)
        #expect(info.role == "master" && info.primaryOffset == 1_000)
        #expect(info.replicas == [ReplicationInfo.Replica(address: "10.0.0.5:6380", state: "online", offset: 900, lagSeconds: 0),
                                  ReplicationInfo.Replica(address: "10.0.0.6:6380", state: "wait_bgsave", offset: 0, lagSeconds: 3)])
        #expect(ReplicationInfo(parsing: "role:master\r\nconnected_slaves:0\r\nmaster_repl_offset:7\r\n").replicas.isEmpty)
    }

    /// "No replica connected", "too few", "lagging" and "could not tell" are told apart.
    @Test func aReplicaShortfallSaysWhy() {
        let none = ReplicaShortfall(required: 1, acknowledged: 0, info: ReplicationInfo(parsing: "role:master\r\nmaster_repl_offset:7\r\n"))
        #expect(none.cause == .replicasMissing && none.description == "0 of 1 required replicas acknowledged: no replica connected to the primary")
        #expect(ReplicaShortfall.assess(required: 1, info: ReplicationInfo(parsing: Self.infoWithReplicas)) == nil, "stats: one replica online and current")
        #expect(ReplicaShortfall.assess(required: 2, info: ReplicationInfo(parsing: Self.infoWithReplicas))?.cause == .replicasMissing)
        let syncing = ReplicaShortfall(required: 2, acknowledged: 1, info: ReplicationInfo(parsing: Self.infoWithReplicas))
        #expect(syncing.cause == .replicasMissing && syncing.connected == 1)
        #expect(syncing.description.contains("only 1 of 2 replicas connected and synchronised (10.0.0.5:6380 online, 100 bytes behind, last ack 0 s ago; 10.0.0.6:6380 wait_bgsave"), "\(syncing)")
        let lagging = ReplicaShortfall(required: 1, acknowledged: 0, info: ReplicationInfo(parsing: Self.infoWithReplicas))
        #expect(lagging.cause == .replicasLagging && lagging.description.hasPrefix("0 of 1 required replicas acknowledged: replicas lagging (10.0.0.5:6380 online, 100 bytes behind"))
        #expect(ReplicaShortfall(required: 1, acknowledged: 0, info: nil).cause == .unknown)
    }

    /// Unmet acknowledgements make the service not ready with the cause, but Redis stays up
    /// (`redis_up` is reachability); `replica_acks_unmet` says it, and an acknowledged batch clears it.
    @Test func unmetAcknowledgementsAreNotRedisDown() {
        let metrics = AggregatorMetrics()
        let health = AggregatorHealth(redisRequired: true, metrics: metrics)
        health.kafka(up: true)
        health.redis(up: true)
        health.replicas(ReplicaShortfall(required: 1, acknowledged: 0, info: ReplicationInfo(parsing: "role:master\r\nmaster_repl_offset:7\r\n")))
        let waiting = health.snapshot()
        #expect(!waiting.ready && waiting.redis)
        #expect(waiting.reasons.count == 1 && waiting.reasons[0].hasPrefix("Redis replicas: 0 of 1 required replicas acknowledged: no replica connected to the primary; waiting "), "\(waiting.reasons)")
        #expect(waiting.json.contains(#""replicas":{"server":null,"required":1,"acknowledged":0,"connected":0,"cause":"replicas-missing","waitingSeconds":"#), "\(waiting.json)")
        #expect(waiting.json.contains(#""primaryOffset":7,"replicas":[]}"#), "\(waiting.json)")
        var rendered = String(decoding: metrics.render(), as: UTF8.self)
        #expect(rendered.contains("aggregator_redis_up 1") && rendered.contains("aggregator_replica_acks_unmet 1"), "\(rendered)")
        health.replicas(nil)
        #expect(health.snapshot().ready)
        rendered = String(decoding: metrics.render(), as: UTF8.self)
        #expect(rendered.contains("aggregator_replica_acks_unmet 0"))
    }

    @Test func withoutRedisOnlyKafkaCounts() {
        let health = AggregatorHealth(redisRequired: false, metrics: AggregatorMetrics())
        health.kafka(up: true)
        health.redis(up: false, RedisError(kind: .connectionFailed, message: "refused"))
        #expect(health.snapshot().ready && health.snapshot().redis)
    }

    @Test func stalledPartitionsAreListedAndSummarisedPastEight() {
        let health = AggregatorHealth(redisRequired: true, metrics: AggregatorMetrics())
        health.kafka(up: true)
        health.redis(up: true)
        #expect(health.stalls([Self.stall(3, lag: 6, seconds: 31)]) == 0, "none stalled before")
        let one = health.snapshot()
        #expect(!one.ready)
        #expect(one.json == #"{"ready":false,"kafka":true,"redis":true,"stalled":[{"partition":"results[3]","lag":6,"seconds":31}],"reason":"partition results[3] has not advanced for 31 s with 6 messages waiting"}"#)
        #expect(health.stalls((0..<10).map { Self.stall($0) }) == 1)
        let reasons = health.snapshot().reasons
        #expect(reasons.count == 9 && reasons.last == "and 2 more stalled partitions")
        #expect(health.stalls([]) == 10)
        #expect(health.snapshot().ready)
    }

    /// Redis' state and its reason change together: a snapshot never shows one without the
    /// other, however the writes and reads interleave.
    @Test func aSnapshotIsNeverTorn() async {
        let health = AggregatorHealth(redisRequired: true, metrics: AggregatorMetrics())
        health.kafka(up: true)
        health.redis(up: true) // from here on Redis is either up, or down with a reason
        let flipper = Task.detached {
            for round in 0..<20_000 {
                if round.isMultiple(of: 2) {
                    health.redis(up: false, RedisError(kind: .connectionLost, message: "round \(round)"))
                } else {
                    health.redis(up: true)
                }
            }
        }
        var torn: [AggregatorHealth.Snapshot] = []
        for _ in 0..<20_000 {
            let snapshot = health.snapshot()
            if snapshot.redis != (snapshot.redisProblem == nil) || snapshot.ready != snapshot.json.hasPrefix(#"{"ready":true"#) { torn.append(snapshot) }
        }
        await flipper.value
        #expect(torn.count == 0, "torn snapshots, the first: \(torn.prefix(3))")
    }
}

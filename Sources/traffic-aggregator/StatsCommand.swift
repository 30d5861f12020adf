import ServiceCLI
import ArgumentParser
import Foundation
import KafkaClient
import RedisClient
import TrafficModel
import Aggregator

/// `traffic-aggregator stats`: cameras, alert lists, redeliveries skipped, Redis memory and
/// replicas, consumer lag.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Cameras with a latest state, alert list lengths, redelivered messages skipped, Redis memory and replicas, consumer lag per partition.")

    @OptionGroup var redis: RedisOptions
    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Input topic (env KAFKA_TOPIC).") var topic: String?
    @Option(help: "Consumer group (env KAFKA_GROUP).") var group: String?
    @Option(name: .customLong("min-replica-acks"), help: "Replicas the aggregator requires (env MIN_REPLICA_ACKS): says whether Redis' replicas meet it, and why not.") var minReplicaAcks: Int?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let (client, keys) = try await redis.connectRouting()
        let latestCameras = try await client.keys(matching: "\(keys.namespace)camera:*:latest").compactMap { keys.camera(fromKey: $0, suffix: "latest") }.sorted()
        var alertLengths: [Int: Int] = [:]
        for key in try await client.keys(matching: "\(keys.namespace)alerts:*") {
            if let camera = keys.camera(fromAlertsKey: key) {
                alertLengths[camera] = try await client.send(.llen(key), routedBy: key)
            }
        }
        // Per camera: redeliveries skipped (counted in its position hash) and its alert dedupe list.
        var redeliveredSkipped = 0
        var upgrading = 0
        for key in try await client.keys(matching: "\(keys.namespace)camera:*:position") {
            let fields = try await client.send(.hmget(key, fields: ["redelivered_skipped", "legacy_markers", "offset", "kafka_offset"]), routedBy: key)
            redeliveredSkipped += fields[0].flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
            // Still reading an older version's alert markers: flagged, or a counter without a pair.
            if fields[1] != nil || (fields[2] != nil && fields[3] == nil) { upgrading += 1 }
        }
        let dedupeLists = try await client.keys(matching: "\(keys.namespace)camera:*:alerted").count
        let legacyMarkers = try await client.keys(matching: keys.legacyAlertMarker("*")).count
        // Memory and replicas of each server: the one Redis, or every primary of a cluster.
        let required = try setting(minReplicaAcks, env: "MIN_REPLICA_ACKS")
        let memory = try await client.sendToEach(.info("memory"))
        var servers: [Server] = []
        for (name, replication) in try await client.sendToEach(.replicationInfo()) {
            let info = memory.first { $0.server == name }?.value ?? ""
            let used = info.split(whereSeparator: \.isNewline).first { $0.hasPrefix("used_memory_human:") }.map { String($0.dropFirst("used_memory_human:".count)) } ?? "?"
            servers.append(Server(name: name, usedMemory: used, replication: replication,
                                  shortfall: required.flatMap { $0 > 0 ? ReplicaShortfall.assess(required: $0, info: replication) : nil }))
        }
        await client.close()

        var lag: [(partition: Int32, committed: Int64?, end: Int64)] = []
        var lagNote: String?
        if kafka.bootstrap != nil {
            let topic = setting(topic, env: "KAFKA_TOPIC") ?? "risk-assessment-results"
            let group = setting(group, env: "KAFKA_GROUP") ?? "result-aggregator"
            let consumer = try KafkaConsumer(configuration: kafka.configuration(group: group))
            let partitions = try await consumer.partitionCount(topic: topic)
            let committed = try await consumer.committedOffsets((0..<Int32(partitions)).map { KafkaTopicPartition(topic: topic, partition: $0) })
            for entry in committed {
                let (_, high) = try await consumer.watermarks(topic: topic, partition: entry.partition)
                lag.append((entry.partition, entry.offset, high))
            }
        } else {
            lagNote = "consumer lag: give --kafka-bootstrap or KAFKA_BOOTSTRAP"
        }

        if json {
            let object: [String: Any] = [
                "camerasWithLatest": latestCameras,
                "alertListLengths": Dictionary(uniqueKeysWithValues: alertLengths.map { (String($0.key), $0.value) }),
                "redisUsedMemory": servers.first?.usedMemory ?? "?",
                "redeliveredSkipped": redeliveredSkipped,
                "alertDedupeLists": dedupeLists,
                "legacyAlertMarkers": legacyMarkers,
                "camerasUpgrading": upgrading,
                "replication": servers.first.map { $0.json(required: required) } as Any? ?? NSNull(),
                "servers": servers.map { server -> [String: Any] in ["server": server.name, "usedMemory": server.usedMemory, "replication": server.json(required: required)] },
                "consumerLag": lag.map { ["partition": Int($0.partition), "committed": $0.committed.map { Int($0) } as Any? ?? NSNull(), "end": Int($0.end), "lag": Int($0.end - ($0.committed ?? 0))] },
            ]
            emit(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        emit("cameras with a latest state: \(latestCameras.count)\(latestCameras.isEmpty ? "" : " (\(latestCameras.map(String.init).joined(separator: ", ")))")")
        emit("alert lists: \(alertLengths.count)")
        for camera in alertLengths.keys.sorted() { emit("  \(keys.alerts(camera).dropFirst(keys.namespace.count))  \(alertLengths[camera, default: 0])") }
        emit("redelivered messages skipped (already applied): \(redeliveredSkipped)")
        emit("alert dedupe lists (camera:<id>:alerted): \(dedupeLists)" + (legacyMarkers > 0 ? "; alerted:<requestId> markers of an older version, left to expire: \(legacyMarkers)" : ""))
        if upgrading > 0 { emit("cameras still checking an older version's alert markers (keep the markers until this is 0): \(upgrading)") }
        for server in servers {
            let replication = server.replication
            let name = servers.count > 1 ? "redis \(server.name)" : "redis"
            emit("\(name) used memory: \(server.usedMemory)")
            emit("\(name) role: \(replication.role), replicas connected: \(replication.replicas.filter(\.isOnline).count)")
            for replica in replication.replicas { emit("  \(replica.address) \(replica.state), \(max(0, replication.primaryOffset - replica.offset)) bytes behind, last ack \(replica.lagSeconds) s ago") }
            if let required, required > 0 { emit("  required by --min-replica-acks \(required): " + (server.shortfall.map { "NOT MET: \($0)" } ?? "met")) }
        }
        if let lagNote { emit(lagNote) }
        if !lag.isEmpty {
            emit("consumer lag (partition: committed / end = lag):")
            for entry in lag { emit("  \(entry.partition): \(entry.committed.map(String.init) ?? "none") / \(entry.end) = \(entry.end - (entry.committed ?? 0))") }
            emit("  total: \(lag.reduce(0) { $0 + $1.end - ($1.committed ?? 0) })")
        }
    }

    /// One Redis server's figures (a cluster has one per primary).
    struct Server {
        var name: String
        var usedMemory: String
        var replication: ReplicationInfo
        var shortfall: ReplicaShortfall?

        func json(required: Int?) -> [String: Any] {
            [
                "role": replication.role,
                "primaryOffset": Int(replication.primaryOffset),
                "replicas": replication.replicas.map { ["address": $0.address, "state": $0.state, "offset": Int($0.offset), "lagSeconds": $0.lagSeconds] },
                "requiredAcks": required as Any? ?? NSNull(),
                "shortfall": shortfall.map { $0.cause.rawValue } as Any? ?? NSNull(),
            ]
        }
    }
}

import ServiceCLI
import ArgumentParser
import Foundation
import KafkaClient
import RedisClient
import TrafficModel

/// `traffic-aggregator stats`: cameras, alert lists, Redis memory, consumer lag.
struct StatsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "stats", abstract: "Cameras with a latest state, alert list lengths, Redis memory and consumer lag per partition.")

    @OptionGroup var redis: RedisOptions
    @OptionGroup var kafka: KafkaOptions
    @Option(help: "Input topic (env KAFKA_TOPIC).") var topic: String?
    @Option(help: "Consumer group (env KAFKA_GROUP).") var group: String?
    @Flag(help: "Print JSON.") var json = false

    func run() async throws {
        let keys = KeySchema(namespace: redis.resolvedNamespace)
        let client = try await RedisClient.connect(configuration: RedisConfiguration(url: redis.resolvedURL))
        let latestCameras = try await scan(client, "\(keys.namespace)camera:*:latest").compactMap { key -> Int? in
            CameraID.parse(key.dropFirst("\(keys.namespace)camera:".count).dropLast(":latest".count))
        }.sorted()
        var alertLengths: [Int: Int] = [:]
        for key in try await scan(client, "\(keys.namespace)alerts:*") {
            if let camera = CameraID.parse(key.dropFirst("\(keys.namespace)alerts:".count)) {
                alertLengths[camera] = try await client.send(.llen(key))
            }
        }
        let memoryInfo = try await client.send(.info("memory"))
        let usedMemory = memoryInfo.split(separator: "\r\n").first { $0.hasPrefix("used_memory_human:") }.map { String($0.dropFirst("used_memory_human:".count)) } ?? "?"

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
                "redisUsedMemory": usedMemory,
                "consumerLag": lag.map { ["partition": Int($0.partition), "committed": $0.committed.map { Int($0) } as Any? ?? NSNull(), "end": Int($0.end), "lag": Int($0.end - ($0.committed ?? 0))] },
            ]
            emit(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
            return
        }
        emit("cameras with a latest state: \(latestCameras.count)\(latestCameras.isEmpty ? "" : " (\(latestCameras.map(String.init).joined(separator: ", ")))")")
        emit("alert lists: \(alertLengths.count)")
        for camera in alertLengths.keys.sorted() { emit("  alerts:\(camera)  \(alertLengths[camera]!)") }
        emit("redis used memory: \(usedMemory)")
        if let lagNote { emit(lagNote) }
        if !lag.isEmpty {
            emit("consumer lag (partition: committed / end = lag):")
            for entry in lag { emit("  \(entry.partition): \(entry.committed.map(String.init) ?? "none") / \(entry.end) = \(entry.end - (entry.committed ?? 0))") }
            emit("  total: \(lag.reduce(0) { $0 + $1.end - ($1.committed ?? 0) })")
        }
    }

    private func scan(_ client: RedisClient, _ pattern: String) async throws -> [String] {
        var cursor: UInt64 = 0
        var keys: [String] = []
        repeat {
            let page = try await client.send(.scan(cursor: cursor, match: pattern, count: 500))
            keys += page.keys
            cursor = page.cursor
        } while cursor != 0
        return keys
    }
}

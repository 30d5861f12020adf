import ServiceCLI
import ArgumentParser
import Foundation
import RedisClient
import TrafficModel

/// `traffic-aggregator latest <camera>`.
struct LatestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "latest", abstract: "Show the latest result of a camera.")

    @Argument(help: "Camera id.") var camera: String
    @OptionGroup var redis: RedisOptions
    @Flag(help: "Print the stored JSON.") var json = false

    func run() async throws {
        guard let id = CameraID.parse(camera) else { throw ValidationError("camera '\(camera)' is not an integer ≥ 0") }
        let (client, keys) = try await redis.connectRouting()
        let stored = try await client.send(.get(keys.latest(id)), routedBy: keys.latest(id))
        await client.close()
        guard let value = stored else {
            if json { emit("null") } else { emit("camera \(id): no latest result (none yet, or older than its TTL)") }
            throw ExitCode(1)
        }
        emit(json ? String(decoding: value, as: UTF8.self) : ResultFormatting.summary(value, highlightAlerts: stdoutIsTTY))
    }
}

/// `traffic-aggregator alerts <camera> [--limit N]`.
struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "alerts", abstract: "Show a camera's recent alerts, newest first.")

    @Argument(help: "Camera id.") var camera: String
    @Option(help: "How many alerts.") var limit = 20
    @OptionGroup var redis: RedisOptions
    @Flag(help: "Print a JSON array.") var json = false

    func run() async throws {
        guard let id = CameraID.parse(camera) else { throw ValidationError("camera '\(camera)' is not an integer ≥ 0") }
        guard limit > 0 else { throw ValidationError("--limit must be positive") }
        let (client, keys) = try await redis.connectRouting()
        let items = try await client.send(.lrange(keys.alerts(id), start: 0, stop: limit - 1), routedBy: keys.alerts(id))
        await client.close()
        if json {
            emit("[" + items.map { String(decoding: $0, as: UTF8.self) }.joined(separator: ",") + "]")
        } else if items.isEmpty {
            emit("camera \(id): no alerts")
        } else {
            for item in items { emit(ResultFormatting.summary(item, highlightAlerts: stdoutIsTTY)) }
        }
    }
}

/// `traffic-aggregator watch [--camera N]`: a live tail of published results.
struct WatchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "watch", abstract: "Live tail of published results (alerts highlighted on a terminal).")

    @Option(help: "Only this camera (default: all).") var camera: String?
    @Option(help: "Stop after this many results (default: run until interrupted).") var count: Int?
    @OptionGroup var redis: RedisOptions
    @Flag(help: "Print each result's JSON.") var json = false

    func run() async throws {
        let keys = KeySchema(namespace: redis.resolvedNamespace)
        let configuration = try RedisConfiguration(url: redis.resolvedURL)
        if configuration.isCluster {
            // Shard channels need a subscriber per primary, which is still to come (docs/scaling.md).
            throw ValidationError("watch does not support redis-cluster:// yet: use latest/alerts, or watch a single Redis")
        }
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: configuration, bufferCapacity: 10_000)
        if let camera {
            guard let id = CameraID.parse(camera) else { throw ValidationError("camera '\(camera)' is not an integer ≥ 0") }
            try await subscriber.subscribe([keys.cameraChannel(id)])
        } else {
            try await subscriber.psubscribe([keys.allCamerasPattern])
        }
        var seen = 0
        for await event in events {
            switch event {
            case .message(let message):
                guard keys.camera(fromChannel: message.channel) != nil else { continue }
                emit(json ? String(decoding: message.payload, as: UTF8.self) : ResultFormatting.summary(message.payload, highlightAlerts: stdoutIsTTY))
                seen += 1
                if let count, seen >= count { await subscriber.close(); return }
            case .disconnected(let why):
                FileHandle.standardError.write(Data("watch: Redis connection lost (\(why)); reconnecting…\n".utf8))
            case .reconnected:
                FileHandle.standardError.write(Data("watch: reconnected\n".utf8))
            default:
                break
            }
        }
    }
}

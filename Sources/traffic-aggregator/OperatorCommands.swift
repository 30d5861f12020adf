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
    @Option(name: .customLong("discovery-seconds"), help: "On a Redis Cluster without --camera: new cameras are followed when the aggregator announces them; this is how often the primaries are scanned anyway, for one missed.") var discoverySeconds = 30.0
    @OptionGroup var redis: RedisOptions
    @Flag(help: "Print each result's JSON.") var json = false

    func validate() throws {
        guard discoverySeconds > 0 else { throw ValidationError("--discovery-seconds must be positive, got \(discoverySeconds)") }
    }

    func run() async throws {
        let configuration = try RedisConfiguration(url: redis.resolvedURL)
        let camera = try self.camera.map { text in
            guard let id = CameraID.parse(text) else { throw ValidationError("camera '\(text)' is not an integer ≥ 0") }
            return id
        }
        if configuration.isCluster {
            try await tailCluster(configuration, camera: camera)
            return
        }
        let keys = KeySchema(namespace: redis.resolvedNamespace)
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: configuration, bufferCapacity: 10_000)
        if let camera {
            try await subscriber.subscribe([keys.cameraChannel(camera)])
        } else {
            try await subscriber.psubscribe([keys.allCamerasPattern])
        }
        await tail(events, keys: keys)
        await subscriber.close()
    }

    /// On a cluster: shard channels, each on the primary of its camera's slot. Without a camera,
    /// every camera with a position hash on any primary, then each one the aggregator announces on
    /// `cameras:new`, and a scan every `--discovery-seconds` for an announcement missed (shard
    /// channels have no pattern form) — as the gateway finds them.
    private func tailCluster(_ configuration: RedisConfiguration, camera: Int?) async throws {
        if let problem = KeySchema.clusterProblem(namespace: redis.resolvedNamespace) { throw ValidationError(problem) }
        let keys = KeySchema(namespace: redis.resolvedNamespace, hashTagged: true)
        let cluster = try await RedisClusterClient.connect(configuration: configuration, label: "watch")
        let (events, continuation) = AsyncStream<RedisSubscriberEvent>.makeStream(bufferingPolicy: .bufferingNewest(10_000))
        let subscriber = try RedisShardedSubscriber(configuration: configuration) { continuation.yield($0) }
        let discovery: Task<Void, Never>?
        var announcements: RedisSubscriber?
        if let camera {
            try await subscriber.subscribe([keys.cameraChannel(camera)])
            discovery = nil
        } else {
            let announced = keys.camerasAnnounced
            let made = RedisSubscriber(configuration: configuration.pinned(toSlotOf: announced)) { event in
                guard case .message(let message) = event, let camera = keys.announcedCamera(channel: message.channel, payload: message.payload) else { return }
                Task {
                    do throws(RedisError) {
                        try await subscriber.subscribe([keys.cameraChannel(camera)])
                    } catch {
                        // Held by the subscriber, placed when it can (the scan finds it too).
                    }
                }
            }
            try await made.subscribe([announced])
            announcements = made
            let seconds = discoverySeconds
            let every = Duration.milliseconds(Int64(seconds * 1000))
            discovery = Task {
                var watched = Set<Int>()
                while !Task.isCancelled {
                    do throws(RedisError) {
                        let found = Set(try await cluster.keys(matching: keys.allPositionsPattern).compactMap { keys.camera(fromKey: $0, suffix: "position") })
                        let fresh = found.subtracting(watched).sorted()
                        if !fresh.isEmpty {
                            try await subscriber.subscribe(fresh.map(keys.cameraChannel))
                            if watched.isEmpty { FileHandle.standardError.write(Data("watch: \(fresh.count) cameras on \(cluster.primaries.count) primaries; new ones are picked up within \(seconds) s\n".utf8)) }
                            watched.formUnion(fresh)
                        }
                    } catch {
                        FileHandle.standardError.write(Data("watch: looking for cameras failed (\(error)); trying again\n".utf8))
                    }
                    do {
                        try await Task.sleep(for: every)
                    } catch {
                        return // cancelled: watch ends
                    }
                }
            }
        }
        await tail(events, keys: keys)
        discovery?.cancel()
        await announcements?.close()
        await subscriber.close()
        await cluster.close()
    }

    /// Prints results until `--count` or the stream ends.
    private func tail(_ events: AsyncStream<RedisSubscriberEvent>, keys: KeySchema) async {
        var seen = 0
        for await event in events {
            switch event {
            case .message(let message):
                guard keys.camera(fromChannel: message.channel) != nil else { continue }
                emit(json ? String(decoding: message.payload, as: UTF8.self) : ResultFormatting.summary(message.payload, highlightAlerts: stdoutIsTTY))
                seen += 1
                if let count, seen >= count { return }
            case .disconnected(let why):
                FileHandle.standardError.write(Data("watch: Redis connection lost (\(why)); reconnecting…\n".utf8))
            case .reconnected:
                FileHandle.standardError.write(Data("watch: reconnected\n".utf8))
            case .shardChannelsLost(let channels, let reason):
                FileHandle.standardError.write(Data("watch: \(channels.count) camera channels interrupted (\(reason)); subscribing them where they are served now…\n".utf8))
            case .shardChannelsRestored(let channels):
                FileHandle.standardError.write(Data("watch: \(channels.count) camera channels back\n".utf8))
            default:
                break
            }
        }
    }
}

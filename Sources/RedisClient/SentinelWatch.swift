import Foundation
import Logging
import Synchronization

/// Follows the sentinels' `+switch-master` announcements for one master name. Each one bumps
/// `generation`; clients and subscribers that connected under an older generation reconnect
/// (through the sentinels) before their next command or within a second, even when the old
/// primary is still alive and would keep answering (a manual failover demotes it to a replica:
/// reads there would be stale, writes refused).
///
/// One per sentinel set and master name in a process, kept for its life: a pub/sub connection
/// to the first sentinel that answers (reconnecting with back-off, like every subscriber). A
/// failover is still followed without it — a lost connection or a `-READONLY` reply makes the
/// next command ask the sentinels — this only makes it prompt.
final class SentinelWatch: Sendable {
    private let subscriber: RedisSubscriber
    private let switches = Switches()

    /// Increases with every `+switch-master` of the master.
    var generation: Int { switches.count.load(ordering: .acquiring) }

    private static let registry = Mutex<[String: SentinelWatch]>([:])

    /// The watch of `sentinels` (made on first use).
    static func shared(_ sentinels: RedisConfiguration.Sentinels, configuration: RedisConfiguration, logger: Logger) -> SentinelWatch {
        let key = sentinels.addresses.map(\.description).joined(separator: ",") + "/" + sentinels.master
        return registry.withLock { registry in
            if let existing = registry[key] { return existing }
            let made = SentinelWatch(sentinels, configuration: configuration, logger: logger)
            registry[key] = made
            return made
        }
    }

    private init(_ sentinels: RedisConfiguration.Sentinels, configuration: RedisConfiguration, logger: Logger) {
        let first = sentinels.addresses[0]
        let sentinel = RedisConfiguration(endpoint: .tcp(host: first.host, port: first.port), username: sentinels.username, password: sentinels.password,
                                          connectTimeout: configuration.connectTimeout, commandTimeout: configuration.commandTimeout, reconnect: configuration.reconnect)
        let prefix = Array((sentinels.master + " ").utf8)
        let switches = self.switches
        subscriber = RedisSubscriber(configuration: sentinel, logger: logger) { event in
            // "+switch-master <master> <old ip> <old port> <new ip> <new port>"
            guard case .message(let message) = event, message.channel == "+switch-master", message.payload.starts(with: prefix) else { return }
            switches.count.add(1, ordering: .releasing)
            logger.notice("the sentinels switched the primary; reconnecting", metadata: ["switch": "\(String(decoding: message.payload, as: UTF8.self))"])
        }
        let subscriber = self.subscriber
        Task { try? await subscriber.subscribe(["+switch-master"]) }
    }

    /// The count the subscriber's callback bumps.
    private final class Switches: Sendable {
        let count = Atomic<Int>(0)
    }
}

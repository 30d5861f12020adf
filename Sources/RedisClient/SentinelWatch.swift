import Logging
import Synchronization

/// Follows the sentinels' `+switch-master` announcements for one master name. Each one bumps
/// `generation`; the client or subscriber that owns the watch reconnects (through the
/// sentinels) before its next command or within a second when its connection was made under an
/// older generation, even when the old primary is still alive and would keep answering (a
/// manual failover demotes it to a replica: reads there would be stale, writes refused).
///
/// Owned by the one `RedisClient` or `RedisSubscriber` that made it, never shared: a pub/sub
/// connection to the first sentinel (reconnecting with back-off, like every subscriber) on a
/// thread of its own, both ended by `close()` when the owner closes, or when the owner is
/// dropped. A failover is still followed without it — a lost connection or a `-READONLY`
/// reply makes the next command ask the sentinels — this only makes it prompt.
final class SentinelWatch: Sendable {
    private let subscriber: RedisSubscriber
    private let switches = Switches()

    /// Increases with every `+switch-master` of the master.
    var generation: Int { switches.count.load(ordering: .acquiring) }

    /// A watch on the first of `sentinels` (nil when there is none to watch). Its thread is
    /// named `sentinel:<port>`.
    init?(_ sentinels: RedisConfiguration.Sentinels, configuration: RedisConfiguration, logger: Logger) {
        guard let first = sentinels.addresses.first else { return nil }
        let sentinel = RedisConfiguration(endpoint: .tcp(host: first.host, port: first.port), username: sentinels.username, password: sentinels.password,
                                          connectTimeout: configuration.connectTimeout, commandTimeout: configuration.commandTimeout, reconnect: configuration.reconnect)
        let prefix = Array((sentinels.master + " ").utf8)
        let switches = self.switches
        // The channel is held from the start: subscribed on every connect, nobody waiting on it.
        subscriber = RedisSubscriber(configuration: sentinel, logger: logger, handler: { event in
            // "+switch-master <master> <old ip> <old port> <new ip> <new port>"
            guard case .message(let message) = event, message.channel == "+switch-master", message.payload.starts(with: prefix) else { return }
            switches.count.add(1, ordering: .releasing)
            logger.notice("the sentinels switched the primary; reconnecting", metadata: ["switch": "\(String(decoding: message.payload, as: UTF8.self))"])
        }, onClose: nil, dropCounter: nil, holding: ["+switch-master"], threadName: "sentinel:\(first.port)")
    }

    /// Ends the watch's thread and its connection; returns once they are gone.
    func close() async {
        await subscriber.close()
    }

    /// The count the subscriber's callback bumps.
    private final class Switches: Sendable {
        let count = Atomic<Int>(0)
    }
}

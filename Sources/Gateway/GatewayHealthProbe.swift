import Foundation
import Websockets
import RedisClient

/// The health probe: a message through Redis pub/sub every `probeInterval` proves delivery.
extension GatewayService {
    func runProbe() async {
        while !Task.isCancelled {
            let sent = Date().timeIntervalSince1970
            _ = try? await redis.send(.publish(probeChannel, Array(String(format: "%.6f", sent).utf8)))
            try? await Task.sleep(for: configuration.probeInterval)
        }
    }

    /// Periodic clean-up (on the housekeeping thread): expired cache entries leave memory, then
    /// the allocator is asked to hand freed pages back to the system (glibc keeps them otherwise,
    /// so RSS would stay at the peak a burst of large results left).
    func housekeeping() {
        let swept = DispatchSemaphore(value: 0)
        post { [self] in
            cache.sweepExpired()
            swept.signal()
        }
        _ = swept.wait(timeout: .now() + .seconds(5))
        MemoryTrim.releaseFreePages()
    }

    func probeReceived(_ payload: [UInt8]) {
        let now = ContinuousClock.now
        let lag = Double(String(decoding: payload, as: UTF8.self)).map { Date().timeIntervalSince1970 - $0 }
        probe.withLock { state in
            state.lastReceived = now
            state.subscriberUp = true
            if let lag { state.lastLag = .microseconds(Int64(max(lag, 0) * 1e6)) }
        }
        if let lag { metrics.pubsubLag.record(.microseconds(Int64(max(lag, 0) * 1e6))) }
    }

    /// Healthy when the subscriber is connected and a probe went through pub/sub recently.
    public var health: (healthy: Bool, detail: String) {
        let state = probe.withLock { $0 }
        let window = max(configuration.probeInterval * 3, .seconds(3))
        let age = state.lastReceived.map { ContinuousClock.now - $0 }
        let pubsub = age.map { $0 <= window } ?? false
        let healthy = pubsub && state.subscriberUp
        let ageMs = age.map { String(Int($0.components.seconds * 1000 + $0.components.attoseconds / 1_000_000_000_000_000)) } ?? "null"
        let lagMs = state.lastLag.map { String(format: "%.3f", Double($0.components.attoseconds) / 1e15 + Double($0.components.seconds) * 1000) } ?? "null"
        return (healthy, #"{"ready":\#(healthy),"redis":\#(state.subscriberUp),"pubsub":\#(pubsub),"lastProbeAgeMs":\#(ageMs),"pubsubLagMs":\#(lagMs)}"#)
    }
}

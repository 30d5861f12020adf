import Foundation
import Synchronization
import Durations

/// The gateway's health as the Redis subscriber sees it: a message through Redis pub/sub every
/// `probeInterval` proves delivery, and the subscriber's connection state. Written by the
/// subscriber thread, read by `/healthz` on the service thread and by the owner.
final class HealthProbe: Sendable {
    private struct State {
        var lastReceived: ContinuousClock.Instant?
        var lastLag: Duration?
        var subscriberUp = false
        var everSubscribed = false
    }

    private let state = Mutex(State())
    /// The channel probes travel on (one per gateway).
    let channel: String
    private let interval: Duration

    init(channel: String, interval: Duration) {
        self.channel = channel
        self.interval = interval
    }

    /// A probe came back through pub/sub; returns its lag when the payload is a send time.
    func received(_ payload: [UInt8]) -> Duration? {
        let now = ContinuousClock.now
        // Anyone can publish on the channel: only a finite send time counts, its lag clamped.
        let lag = Double(String(decoding: payload, as: UTF8.self)).flatMap { sent in
            sent.isFinite ? Duration.seconds(saturating: max(Date().timeIntervalSince1970 - sent, 0)) : nil
        }
        state.withLock { state in
            state.lastReceived = now
            state.subscriberUp = true
            if let lag { state.lastLag = lag }
        }
        return lag
    }

    /// The subscriber lost or regained its connection.
    func subscriber(up: Bool) {
        state.withLock { $0.subscriberUp = up }
    }

    /// The probe channel's subscription is confirmed; true the first time (Redis reachable at last).
    func probeSubscribed() -> Bool {
        state.withLock { state -> Bool in
            defer { state.everSubscribed = true }
            state.subscriberUp = true
            return !state.everSubscribed
        }
    }

    /// Healthy when the subscriber is connected and a probe went through pub/sub recently.
    var health: (healthy: Bool, detail: String) {
        let state = state.withLock { $0 }
        let window = max(interval * 3, .seconds(3))
        let age = state.lastReceived.map { ContinuousClock.now - $0 }
        let pubsub = age.map { $0 <= window } ?? false
        let healthy = pubsub && state.subscriberUp
        let ageMs = age.map { String($0.wholeMilliseconds) } ?? "null"
        let lagMs = state.lastLag.map { String(format: "%.3f", $0.inMilliseconds) } ?? "null"
        return (healthy, #"{"ready":\#(healthy),"redis":\#(state.subscriberUp),"pubsub":\#(pubsub),"lastProbeAgeMs":\#(ageMs),"pubsubLagMs":\#(lagMs)}"#)
    }
}

import Foundation
import Synchronization
import Testing
import TestSupport
@testable import Aggregator

/// The gate a partition revoke waits at for the write in flight (the consumer's poll thread
/// blocks there, so every wait here runs on a thread of its own).
@Suite struct WriteGateTests {
    /// What happened, in order, from any thread.
    final class EventLog: Sendable {
        private let entries = Mutex<[String]>([])
        func append(_ event: String) { entries.withLock { $0.append(event) } }
        var lines: [String] { entries.withLock { $0 } }
    }

    /// `gate.waitForCurrent` on a thread of its own, as the consumer's poll thread calls it.
    static func revoke(_ gate: WriteGate, timeout: Duration, events: EventLog? = nil) async -> WriteGate.Wait {
        await withCheckedContinuation { continuation in
            Thread {
                events?.append("revoke waits")
                let outcome = gate.waitForCurrent(timeout: timeout)
                events?.append("revoke released (\(outcome))")
                continuation.resume(returning: outcome)
            }.start()
        }
    }

    @Test func aRevokeWaitsForTheWriteInFlightButNotForever() async throws {
        let gate = WriteGate()
        #expect(await Self.revoke(gate, timeout: .seconds(60)) == .noWrite, "no write yet: nothing to wait for")

        // A write in flight: the revoke is released by the write finishing, not before it.
        let done = gate.begin()
        let events = EventLog()
        let revoke = Task { await Self.revoke(gate, timeout: .seconds(60), events: events) }
        try await waitUntil("the revoke is at the gate", timeout: .seconds(10)) { events.lines.contains("revoke waits") }
        events.append("write finished")
        done.signal()
        #expect(await revoke.value == .finished)
        #expect(events.lines == ["revoke waits", "write finished", "revoke released (finished)"], "released by the write finishing, not before")

        #expect(await Self.revoke(gate, timeout: .seconds(60)) == .finished, "a finished write lets every later revoke through")

        _ = gate.begin() // never finishes
        #expect(await Self.revoke(gate, timeout: .milliseconds(300)) == .timedOut, "bounded by the timeout")
    }
}

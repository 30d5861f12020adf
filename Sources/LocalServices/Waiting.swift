import Foundation

/// Polls `condition` until it holds or `timeout` passes; throws naming what was awaited.
/// Tests wait on conditions with deadlines this way, never with blind sleeps.
public func waitUntil(_ what: String, timeout: Duration = .seconds(10), every interval: Duration = .milliseconds(10), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while true {
        if try await condition() { return }
        if ContinuousClock.now >= deadline {
            throw LocalServiceError("timed out after \(timeout) waiting until \(what)")
        }
        try await Task.sleep(for: interval)
    }
}

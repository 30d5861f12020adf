import Foundation
import Synchronization

/// The value of `operation`, which must finish within `timeout` (else this throws; the
/// operation is left running, as a hung one cannot be stopped).
public func withDeadline<T: Sendable>(_ timeout: Duration, _ what: String = "the operation finishes", _ operation: @escaping @Sendable () async throws -> T) async throws -> T {
    let outcome = Collector<Result<T, any Error>>()
    Task {
        do { outcome.append(.success(try await operation())) } catch { outcome.append(.failure(error)) }
    }
    try await waitUntil(what, timeout: timeout) { outcome.count > 0 }
    return try outcome.values[0].get()
}

/// A name no other test uses, for keys, topics and groups, so tests can run in parallel.
public func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UUID().uuidString.prefix(8).lowercased())"
}

/// Collects values from concurrent callbacks for later assertions.
public final class Collector<Element: Sendable>: Sendable {
    private let items = Mutex<[Element]>([])

    public init() {}

    public func append(_ item: Element) {
        items.withLock { $0.append(item) }
    }

    public var values: [Element] { items.withLock { $0 } }
    public var count: Int { items.withLock { $0.count } }
}

/// Reads `stream` until `done` holds for what was read, within `timeout` (else throws naming
/// `what`); the stream is finished afterwards. Tests never wait on a stream without a deadline.
public func collect<Element: Sendable>(_ stream: AsyncStream<Element>, _ what: String, timeout: Duration = .seconds(30), until done: @escaping @Sendable ([Element]) -> Bool) async throws -> [Element] {
    let seen = Collector<Element>()
    let reader = Task {
        for await element in stream {
            seen.append(element)
            if done(seen.values) { break }
        }
    }
    defer { reader.cancel() }
    try await waitUntil(what, timeout: timeout) { done(seen.values) }
    return seen.values
}

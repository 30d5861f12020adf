public import Logging
import ServiceLifecycle

/// The one place where the executables handle SIGTERM and SIGINT: `body` runs as the single
/// service of a swift-service-lifecycle `ServiceGroup`, and the first signal triggers its
/// graceful shutdown, which calls `onShutdown` (the service then finishes what it is doing and
/// `body` returns). Later signals change nothing: a service's own budget bounds its shutdown.
public func runGracefully(name: String, logger: Logger, onShutdown: @escaping @Sendable () -> Void, _ body: @escaping @Sendable () async throws -> Void) async throws {
    let service = ClosureService(name: name, body: body, onShutdown: onShutdown)
    let group = ServiceGroup(configuration: .init(
        // When the body ends on its own the group ends with it (not as "finished unexpectedly").
        services: [.init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)],
        gracefulShutdownSignals: [.sigterm, .sigint],
        cancellationSignals: [],
        logger: logger
    ))
    try await group.run()
}

/// Suspends until graceful shutdown is triggered (for a service whose work is to wait).
public func waitForGracefulShutdown() async {
    try? await gracefulShutdown()
}

/// A service made of a body and what to do when asked to stop.
struct ClosureService: Service, CustomStringConvertible {
    let name: String
    let body: @Sendable () async throws -> Void
    let onShutdown: @Sendable () -> Void

    var description: String { name }

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await body()
        } onGracefulShutdown: {
            onShutdown()
        }
    }
}

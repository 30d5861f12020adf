public import Logging
public import ServiceLifecycle

/// The one place where the executables handle SIGTERM and SIGINT: `services` run in one
/// swift-service-lifecycle `ServiceGroup`, and the first signal triggers the group's graceful
/// shutdown, service by service in reverse order (so list what the others rely on first). A
/// service that ends on its own shuts the others down gracefully; one that throws cancels
/// them, and the group throws its error. Later signals change nothing: each service's own
/// budget bounds its shutdown.
public func runServiceGroup(_ services: [any Service], logger: Logger) async throws {
    let group = ServiceGroup(configuration: .init(
        // A service that ends on its own ends the group with it (not as "finished unexpectedly").
        services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
        gracefulShutdownSignals: [.sigterm, .sigint],
        cancellationSignals: [],
        logger: logger
    ))
    try await group.run()
}

/// `runServiceGroup` for a service made of a closure: `body` runs as the group's one service
/// and `onShutdown` is called when its graceful shutdown is triggered (`body` should then
/// finish what it is doing and return). Used by the experiment tools; the aggregator and the
/// gateway are `Service`s of their own.
public func runGracefully(name: String, logger: Logger, onShutdown: @escaping @Sendable () -> Void, _ body: @escaping @Sendable () async throws -> Void) async throws {
    try await runServiceGroup([ClosureService(name: name, body: body, onShutdown: onShutdown)], logger: logger)
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

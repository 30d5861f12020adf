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

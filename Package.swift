// swift-tools-version:6.0
import PackageDescription

/// Every Swift target is compiled in Swift 6 language mode with complete concurrency checking.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "traffic-aggregator",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "traffic-aggregator", targets: ["traffic-aggregator"]),
        .executable(name: "traffic-gateway", targets: ["traffic-gateway"]),
        .executable(name: "traffic-sim", targets: ["traffic-sim"]),
        .executable(name: "traffic-bench", targets: ["traffic-bench"]),
        .executable(name: "traffic-experiment", targets: ["traffic-experiment"]),
        .library(name: "RedisClient", targets: ["RedisClient"]),
        .library(name: "KafkaClient", targets: ["KafkaClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
    ],
    targets: [
        // MARK: C libraries (Debian packages), one wrapper module each.
        // hiredis' pkg-config file adds -D_FILE_OFFSET_BITS=64, which SwiftPM rejects with a
        // warning on every build; the headers sit in the default include path, so the module
        // map's `link "hiredis"` is all that is needed.
        .systemLibrary(
            name: "CHiredis",
            providers: [.apt(["libhiredis-dev"])]
        ),
        .systemLibrary(
            name: "CRdKafka",
            pkgConfig: "rdkafka",
            providers: [.apt(["librdkafka-dev"])]
        ),
        // A C target rather than a system library: besides the shim header it compiles
        // frame_guard.c (unmasked-frame detection, see there). Debian packages:
        // libwebsockets-dev, libssl-dev, libev-dev (scripts/install-deps.sh).
        .target(
            name: "CWebsockets",
            linkerSettings: [.linkedLibrary("websockets"), .linkedLibrary("ev")]
        ),
        // libcrypto (OpenSSL): SHA-256 and HMAC-SHA256 for JWTs and dead-letter digests.
        .systemLibrary(
            name: "COpenSSL",
            providers: [.apt(["libssl-dev"])]
        ),

        // epoll and memmem for the load generator (traffic-bench).
        .systemLibrary(name: "CLinux"),
        .systemLibrary(
            name: "CLapack",
            pkgConfig: "lapacke",
            providers: [.apt(["liblapacke-dev", "libopenblas-dev"])]
        ),
        .systemLibrary(
            name: "CSVM",
            providers: [.apt(["libsvm-dev"])]
        ),
        .target(name: "LinearAlgebra", dependencies: ["CLapack"], swiftSettings: strict),
        .target(name: "SupportVectorMachine", dependencies: ["CSVM"], swiftSettings: strict),

        // MARK: Client layer.
        .target(
            name: "RedisClient",
            dependencies: ["Backoff", "CHiredis", "Durations", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .target(
            name: "KafkaClient",
            dependencies: ["Backoff", "CRdKafka", "OwnThread", "ProcessSpawn", "Durations", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),

        // libwebsockets, wrapped once: the HTTP/WebSocket server (services) and the WebSocket
        // client (tools, tests, benchmarks) share its service loop.
        .target(
            name: "Websockets",
            dependencies: ["CWebsockets", "TrafficModel", "Durations"],
            swiftSettings: strict
        ),
        .target(name: "Digest", dependencies: ["COpenSSL"], swiftSettings: strict),

        // MARK: Domain.
        .target(name: "TrafficModel", swiftSettings: strict),
        // Simulated results and frame images, for the simulator, benchmarks and tests.
        .target(name: "Simulation", dependencies: ["TrafficModel"], swiftSettings: strict),
        // Local servers and processes started by tests and benchmarks: redis-server on a free
        // port, child processes, a raw HTTP GET, waiting with deadlines.
        .target(name: "LocalServices", dependencies: ["RedisClient", "ProcessSpawn", "OwnThread", "Durations"], swiftSettings: strict),
        // Child processes: started with clean signal state and only descriptors 0–2, their
        // output read line by line or captured, waited for and reaped without polling.
        .target(name: "ProcessSpawn", dependencies: ["OwnThread"], swiftSettings: strict),
        // Blocking calls on a thread of their own, never on Swift's cooperative pool.
        .target(name: "OwnThread", swiftSettings: strict),
        // The one set of Duration conversions (seconds, whole milliseconds, …).
        .target(name: "Durations", swiftSettings: strict),
        // The one retry and back-off policy (capped exponential, jittered; a pure state machine).
        .target(name: "Backoff", dependencies: ["Durations"], swiftSettings: strict),

        // MARK: Services.
        .target(
            name: "Aggregator",
            dependencies: ["Backoff", 
                "TrafficModel", "RedisClient", "KafkaClient", "Digest", "Durations",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        .target(
            name: "Gateway",
            dependencies: ["Backoff", 
                "TrafficModel", "RedisClient", "Websockets", "Digest", "Durations",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),

        // MARK: Experiments (docs/experiment.md), one module per job; dependencies point down:
        // Regression ← ExperimentData ← ExperimentPipeline, GridPool; ReportHTML serves both.
        // Regression algorithms, metrics, seeded splits and the one model evaluation (no Redis).
        .target(
            name: "Regression",
            dependencies: ["LinearAlgebra", "SupportVectorMachine", "OwnThread", "Durations"],
            swiftSettings: strict
        ),
        // CSV table, data set, the stream format (the Python framework's contract), data-set writer.
        .target(
            name: "ExperimentData",
            dependencies: ["Regression", "RedisClient", "TrafficModel"],
            swiftSettings: strict
        ),
        // The small HTML page builder both experiment reports share.
        .target(name: "ReportHTML", swiftSettings: strict),
        // The Redis-Streams pipeline: dispatcher, stream reader, algorithm worker, results, report.
        .target(
            name: "ExperimentPipeline",
            dependencies: [
                "Regression", "ExperimentData", "ReportHTML", "RedisClient", "TrafficModel", "ProcessSpawn", "Durations",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The distributed grid search: jobs, tasks, the worker pool, finaliser, grid report.
        .target(
            name: "GridPool",
            dependencies: ["Backoff", 
                "Regression", "ExperimentData", "ReportHTML", "RedisClient", "TrafficModel", "OwnThread", "Durations",
            ],
            swiftSettings: strict
        ),

        // MARK: Executables.
        .target(
            name: "ServiceCLI",
            dependencies: [
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "traffic-aggregator",
            dependencies: [
                "Aggregator", "TrafficModel", "RedisClient", "KafkaClient", "Websockets", "ServiceCLI", "OwnThread",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "traffic-gateway",
            dependencies: [
                "Gateway", "TrafficModel", "RedisClient", "ServiceCLI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "traffic-sim",
            dependencies: [
                "Simulation", "ServiceCLI",
                "RedisClient", "KafkaClient", "TrafficModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "traffic-experiment",
            dependencies: [
                "Regression", "ExperimentData", "ExperimentPipeline", "GridPool", "RedisClient", "ServiceCLI", "Durations", "ProcessSpawn",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "traffic-bench",
            dependencies: [
                "Simulation", "CLinux",
                "RedisClient", "KafkaClient", "LocalServices", "Aggregator", "TrafficModel", "Durations",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),

        // MARK: Tests.
        .target(
            name: "TestSupport",
            dependencies: ["LocalServices", "RedisClient", "KafkaClient", "Websockets", .product(name: "Logging", package: "swift-log")],
            path: "Tests/TestSupport",
            swiftSettings: strict
        ),
        .testTarget(
            name: "DeploymentTests",
            dependencies: ["Aggregator", "Gateway", "RedisClient", "TestSupport"],
            swiftSettings: strict
        ),
        // docs/architecture.md against this manifest.
        .testTarget(name: "DocumentationTests", swiftSettings: strict),
        .testTarget(
            name: "DurationsTests",
            dependencies: ["Durations"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ProcessSpawnTests",
            dependencies: ["ProcessSpawn", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RedisClientTests",
            dependencies: ["RedisClient", "Backoff", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "TrafficModelTests",
            dependencies: ["TrafficModel", "TestSupport"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "AggregatorTests",
            dependencies: ["Aggregator", "Gateway", "Simulation", "TestSupport", "TrafficModel", "RedisClient", "KafkaClient", "Websockets", "Digest", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WebsocketsTests",
            dependencies: ["Websockets", "TestSupport", "TrafficModel"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Simulation",
                "Gateway", "Aggregator", "TestSupport", "TrafficModel", "RedisClient", "Websockets", "Digest",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "ExperimentTests",
            dependencies: ["Regression", "ExperimentData", "ExperimentPipeline", "GridPool", "ReportHTML", "Backoff", "TestSupport", "RedisClient", "TrafficModel"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "KafkaClientTests",
            dependencies: ["KafkaClient", "TestSupport"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)

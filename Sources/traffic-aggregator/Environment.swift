import ArgumentParser
import Foundation
import Logging

/// Reads an environment variable, treating empty as unset.
func env(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
    return value
}

/// Options shared by every command that talks to Redis.
struct RedisOptions: ParsableArguments {
    @Option(name: .customLong("redis-url"), help: "Redis URL (env REDIS_URL). redis://[user:password@]host:port/db or unix:///path")
    var redisURL: String?

    @Option(help: "Key namespace prefix, e.g. 'prod:' (env TRAFFIC_NAMESPACE).")
    var namespace: String?

    var resolvedURL: String { redisURL ?? env("REDIS_URL") ?? "redis://127.0.0.1:6379" }
    var resolvedNamespace: String { namespace ?? env("TRAFFIC_NAMESPACE") ?? "" }
}

/// Sets up swift-log once, at the level asked for.
func bootstrapLogging(_ level: String?) {
    let parsed = Logger.Level(rawValue: (level ?? env("LOG_LEVEL") ?? "info").lowercased()) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = parsed
        return handler
    }
}

/// Writes a line to stdout without buffering (so pipes see it at once).
func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Whether stdout is a terminal (colours and highlighting only then).
var stdoutIsTTY: Bool { isatty(1) == 1 }

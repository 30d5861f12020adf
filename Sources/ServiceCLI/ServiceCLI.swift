public import ArgumentParser
import Foundation
import Logging

/// What every service executable shares: environment, Redis options, logging, signals.

/// Reads an environment variable, treating empty as unset.
public func env(_ name: String) -> String? {
    guard let value = ProcessInfo.processInfo.environment[name], !value.isEmpty else { return nil }
    return value
}

/// The one way a command reads a setting: the flag when given, else the environment variable
/// (empty counts as unset), else nil (the caller's default). An environment value that does not
/// parse is refused naming the variable, never silently replaced by the default.
public func setting<Value: LosslessStringConvertible>(_ flag: Value?, env name: String) throws -> Value? {
    if let flag { return flag }
    guard let text = env(name) else { return nil }
    guard let value = Value(text) else { throw ValidationError("environment variable \(name)=\(text) is not a valid \(Value.self)") }
    return value
}

/// `setting(_:env:)` for text, which always parses.
public func setting(_ flag: String?, env name: String) -> String? {
    flag ?? env(name)
}

/// Options shared by every command that talks to Redis.
public struct RedisOptions: ParsableArguments {
    public init() {}

    @Option(name: .customLong("redis-url"), help: "Redis URL (env REDIS_URL). redis://[user:password@]host:port/db, unix:///path, redis-sentinel://[user:password@]host:26379,host:26379/master-name[/db] for a primary behind Sentinel, or redis-cluster://[user:password@]host:port[,host:port…] for a Redis Cluster")
    public var redisURL: String?

    @Option(help: "Key namespace prefix, e.g. 'prod:' (env TRAFFIC_NAMESPACE).")
    public var namespace: String?

    public var resolvedURL: String { setting(redisURL, env: "REDIS_URL") ?? "redis://127.0.0.1:6379" }
    public var resolvedNamespace: String { setting(namespace, env: "TRAFFIC_NAMESPACE") ?? "" }
}

/// Sets up swift-log once, at the level asked for.
public func bootstrapLogging(_ level: String?) {
    let parsed = Logger.Level(rawValue: (setting(level, env: "LOG_LEVEL") ?? "info").lowercased()) ?? .info
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = parsed
        return handler
    }
}

/// Writes a line to stdout without buffering (so pipes see it at once).
public func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// Whether stdout is a terminal (colours and highlighting only then).
public var stdoutIsTTY: Bool { isatty(1) == 1 }


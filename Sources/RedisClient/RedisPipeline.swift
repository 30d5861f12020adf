/// Commands queued to be sent in one round trip.
///
/// `append` returns the index of the command's reply in the array `RedisClient.execute(_:)`
/// returns; decode a typed value with `command.value(from: replies[index])`.
public struct RedisPipeline: Sendable {
    public private(set) var commands: [RedisArguments] = []

    public init() {}

    public init(capacity: Int) {
        commands.reserveCapacity(capacity)
    }

    @discardableResult
    public mutating func append<Value>(_ command: RedisCommand<Value>) -> Int {
        commands.append(command.arguments)
        return commands.count - 1
    }

    public var count: Int { commands.count }
    public var isEmpty: Bool { commands.isEmpty }
}

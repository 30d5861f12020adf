public import RedisClient

/// A task as delivered to a worker: its stream entry (which stays in the worker's pending list
/// until acknowledged) and what the entry says.
public struct TaskDelivery: Sendable {
    public var stream: String
    public var entry: RedisStreamEntry
    public var job: String
    public var task: GridTask
    /// Taken over from a silent worker (XAUTOCLAIM), not read new.
    public var reclaimed: Bool
}

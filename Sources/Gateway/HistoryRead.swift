public import TrafficModel

/// What the history read for a recovery or a catch-up found.
public struct HistoryRead: Sendable, Equatable {
    /// The camera's current position counter (nil when it has none: never published, or lost).
    public var current: ResultPosition?
    /// History entries after the requested offset, oldest first.
    public var entries: [LiveResult]

    public init(current: ResultPosition?, entries: [LiveResult]) {
        self.current = current
        self.entries = entries
    }
}

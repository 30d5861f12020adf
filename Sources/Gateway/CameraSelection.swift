import TrafficModel

/// What a client subscribes to.
public enum CameraSelection: Sendable, Equatable {
    case cameras([Int])
    /// Every camera, now and future (the gateway uses the pattern subscription).
    case all
}

public import TrafficModel

/// One camera's entry in a snapshot.
public struct SnapshotEntry: Sendable, Equatable {
    public var camera: Int
    /// The cached latest result, nil when the camera has none.
    public var latest: LiveResult?
    /// The camera's position counter when the snapshot was read (nil when unknown): the client
    /// continues from there even when `latest` is older or missing.
    public var current: ResultPosition?

    public init(camera: Int, latest: LiveResult?, current: ResultPosition? = nil) {
        self.camera = camera
        self.latest = latest
        self.current = current
    }
}

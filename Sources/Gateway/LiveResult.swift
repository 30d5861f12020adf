public import TrafficModel

/// One published result as the gateway handles it: the camera, its position (nil when the
/// publisher did not put one in) and the JSON exactly as published.
public struct LiveResult: Sendable, Equatable {
    public var camera: Int
    public var position: ResultPosition?
    public var payload: [UInt8]

    public init(camera: Int, position: ResultPosition?, payload: [UInt8]) {
        self.camera = camera
        self.position = position
        self.payload = payload
    }

    /// A result read from a channel message (the position is taken from the payload's head).
    public init(camera: Int, payload: [UInt8]) {
        self.init(camera: camera, position: ResultPosition.parse(prefixOf: payload), payload: payload)
    }
}

/// What a client subscribes to.
public enum CameraSelection: Sendable, Equatable {
    case cameras([Int])
    /// Every camera, now and future (the gateway uses the pattern subscription).
    case all
}

/// The cameras a client may watch (from its token's claim).
public enum CameraPermission: Sendable, Equatable {
    case all
    case only(Set<Int>)

    public func allows(_ camera: Int) -> Bool {
        switch self {
        case .all: true
        case .only(let cameras): cameras.contains(camera)
        }
    }
}

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

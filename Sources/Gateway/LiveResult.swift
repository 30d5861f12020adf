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

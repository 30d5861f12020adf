import TrafficModel

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

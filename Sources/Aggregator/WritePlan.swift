import KafkaClient
import TrafficModel

extension KafkaMessage {
    /// `topic[partition]@offset`, for logs and dead-letter headers.
    public var position: String { "\(topic)[\(partition)]@\(offset)" }
}

/// A message that failed validation, with the reason to record in the dead-letter topic.
public struct DeadLetter: Sendable {
    public var source: KafkaMessage
    public var rejection: InputRejection
}

/// Everything one batch writes to Redis, in the order it must happen.
///
/// Built by the pure `WritePlanner` and executed by one script call: publishes in input order
/// (so one camera's results stay in order), one conditional `latest` update per camera (the
/// newest of the batch; the script keeps it only when it is not older than what is stored),
/// and alerts pushed once per requestId.
public struct WritePlan: Sendable {
    public struct Publish: Sendable, Equatable {
        public var channel: String
        public var payload: [UInt8]
    }

    public struct LatestUpdate: Sendable, Equatable {
        public var camera: Int
        public var key: String
        public var timestampKey: String
        public var timestampMilliseconds: Int64
        public var payload: [UInt8]
    }

    public struct Alert: Sendable, Equatable {
        public var camera: Int
        public var requestId: String
        public var markerKey: String
        public var listKey: String
        public var payload: [UInt8]
    }

    public var publishes: [Publish] = []
    public var latest: [LatestUpdate] = []
    public var alerts: [Alert] = []
    /// How many results had no usable detection.
    public var detectionMissing = 0

    public var isEmpty: Bool { publishes.isEmpty }
}

public import KafkaClient
public import TrafficModel

extension KafkaMessage {
    /// `topic[partition]@offset`, for logs and dead-letter headers.
    public var position: String { "\(topic)[\(partition)]@\(offset)" }
}

/// A Kafka message the planner refused: what the dead-letter topic receives.
public typealias DeadLetter = Rejected<KafkaMessage>

extension KafkaMessage: PlannerInput {}

/// Everything one batch writes to Redis, in the order it must happen.
///
/// Built by the pure `WritePlanner` and applied by one `WriteTransaction`: publishes in input order
/// (so one camera's results stay in order, each given the camera's next position and appended
/// to its history), one conditional `latest` update per camera (the newest of the batch; the
/// transaction keeps it only when it is not older than what is stored), and alerts pushed once per
/// requestId per camera. `latest` and alerts name the publish whose positioned payload they store, so each
/// payload travels to Redis once.
public struct WritePlan: Sendable {
    public struct Publish: Sendable, Equatable {
        public var channel: String
        public var payload: [UInt8]
        /// Index of this camera's entry in `latest` (one per camera of the batch).
        public var cameraSlot: Int
        /// The result's own timestamp (`latest` is the newest applied one).
        public var timestampMilliseconds: Int64 = 0
        /// Where the message is in Kafka (nil: not from Kafka, always applied).
        public var origin: MessageOrigin?
    }

    /// The per-camera part of a batch: its keys and the newest result for `latest`.
    public struct LatestUpdate: Sendable, Equatable {
        public var camera: Int
        public var channel: String
        public var historyKey: String
        public var positionKey: String
        public var key: String
        public var timestampKey: String
        public var timestampMilliseconds: Int64
        public var payload: [UInt8]
        /// The publish whose positioned payload becomes `latest`.
        public var publishIndex: Int
    }

    public struct Alert: Sendable, Equatable {
        public var camera: Int
        public var requestId: String
        public var listKey: String
        /// The camera's capped list of requestIds that alerted (`camera:<id>:alerted`): a
        /// requestId in it pushes no second alert.
        public var alertedKey: String
        /// The marker versions before the applied offset wrote (`alerted:<requestId>`), read only
        /// for a camera without a stored Kafka offset, so an upgrade alerts no redelivery twice.
        public var legacyMarkerKey: String
        public var payload: [UInt8]
        /// The publish whose positioned payload is pushed.
        public var publishIndex: Int
    }

    /// A frame image stored under its own key (`SET … EX`), before the result referencing it is
    /// published.
    public struct Frame: Sendable, Equatable {
        public var key: String
        public var bytes: [UInt8]
        /// The publish of the result referencing it (a redelivered result writes no frame).
        public var publishIndex: Int
    }

    public var publishes: [Publish] = []
    public var latest: [LatestUpdate] = []
    public var alerts: [Alert] = []
    public var frames: [Frame] = []
    /// Valid messages whose merged result was refused (index into the planned batch), to be
    /// dead-lettered; they write nothing.
    public var rejected: [(index: Int, rejection: InputRejection)] = []
    /// How many results had no usable detection.
    public var detectionMissing = 0
    /// Of those, detections present but not a JSON object.
    public var detectionCorrupt = 0
    /// Detection members dropped because the aggregator writes those names itself.
    public var droppedDetectionFields: [String] = []
    /// Frame images dropped (not base64, too large), with why.
    public var frameProblems: [String] = []

    public var isEmpty: Bool { publishes.isEmpty }
}

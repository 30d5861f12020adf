import Foundation

/// Generates realistic camera-pipeline output: a detection record and a risk assessment per
/// frame, as the upstream services would (≈1.5 KB per result with detection). Deterministic for
/// a given seed, so tests and benchmarks can replay the same traffic.
public struct ResultSimulator: Sendable {
    /// One simulated frame.
    public struct Frame: Sendable {
        public var requestId: String
        public var cameraId: Int
        public var timestampMilliseconds: Int64
        public var isAlert: Bool
        /// `detection:<requestId>` JSON.
        public var detection: [UInt8]
        /// The Kafka message value (risk assessment).
        public var assessment: [UInt8]
    }

    public var cameras: Int
    public var alertRatio: Double
    /// Every n-th detection carries a painted frame (`frameImage`, base64 PNG of 192×108 with
    /// the boxes outlined, plus `frameWidth`/`frameHeight` of the box coordinates); 0: none.
    public var frameImageEvery = 0
    private var state: UInt64
    private var sequence = 0
    private let runTag: String

    public init(cameras: Int = 50, alertRatio: Double = 0.2, seed: UInt64 = 42, runTag: String = "sim") {
        self.cameras = max(1, cameras)
        self.alertRatio = alertRatio
        self.state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed
        self.runTag = runTag
    }

    private mutating func next() -> UInt64 {
        // xorshift64*
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }

    private mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
    private mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }

    static let classes = ["car", "truck", "bus", "motorcycle", "bicycle", "pedestrian", "van"]
    static let relations = ["following", "overtaking", "merging", "crossing", "parallel"]
    static let events = ["sudden lane change", "tailgating", "speeding", "red-light running", "wrong-way driving", "close pass"]

    /// The next frame; timestamps advance per camera, `at` is the frame time in epoch ms.
    public mutating func next(at timestampMilliseconds: Int64) -> Frame {
        sequence += 1
        let camera = int(0..<cameras)
        let requestId = "\(runTag)_\(timestampMilliseconds)_\(sequence)"
        let isAlert = unit() < alertRatio
        let level: String
        var dangerous = false
        if isAlert {
            if unit() < 0.5 { level = unit() < 0.7 ? "high" : "critical" } else { level = ["none", "low", "medium"][int(0..<3)]; dangerous = true }
        } else {
            level = ["none", "low", "medium"][int(0..<3)]
        }
        let timestamp = Self.rfc3339(timestampMilliseconds)
        let objectCount = int(6..<13)
        var objects: [String] = []
        var boxes: [FramePainter.Box] = []
        for i in 0..<objectCount {
            let x = int(0..<1800), y = int(0..<1000)
            let box = (x1: x, y1: y, x2: x + int(20..<300), y2: y + int(20..<200))
            boxes.append(box)
            objects.append(#"{"objectId":\#(i),"class":"\#(Self.classes[int(0..<Self.classes.count)])","confidence":0.\#(int(50..<99)),"bbox":[\#(box.x1),\#(box.y1),\#(box.x2),\#(box.y2)],"speedKmh":\#(int(0..<120))}"#)
        }
        var groups: [String] = []
        for g in 0..<int(1..<4) {
            groups.append(#"{"groupId":\#(g + 1),"objectIds":[\#(int(0..<objectCount)),\#(int(0..<objectCount))],"relation":"\#(Self.relations[int(0..<Self.relations.count)])"}"#)
        }
        var frame = ""
        if frameImageEvery > 0, sequence % frameImageEvery == 0 {
            let png = FramePainter.png(width: 192, height: 108, boxes: boxes, scale: 10, seed: UInt64(camera))
            frame = #","frameWidth":1920,"frameHeight":1080,"frameImage":"\#(Data(png).base64EncodedString())""#
        }
        let detection = #"{"cameraId":\#(camera),"timestamp":"\#(timestamp)","detectedObjects":[\#(objects.joined(separator: ","))],"trafficGroups":[\#(groups.joined(separator: ","))]\#(frame)}"#
        var riskEvents: [String] = []
        if isAlert {
            riskEvents.append(#"{"type":"\#(Self.events[int(0..<Self.events.count)])","objectIds":[\#(int(0..<objectCount))],"confidence":0.\#(int(60..<99))}"#)
        }
        let assessment = #"{"requestId":"\#(requestId)","cameraId":\#(camera),"timestamp":"\#(timestamp)","riskAssessment":{"maxRiskLevel":"\#(level)","hasDangerousDriving":\#(dangerous),"riskEvents":[\#(riskEvents.joined(separator: ","))],"summary":"\#(isAlert ? "Potentially dangerous interaction detected between tracked vehicles in the monitored lanes." : "Traffic flowing normally; no hazardous interaction between tracked vehicles.")"},"llmLatency":\#(Double(int(800..<4000)) / 1000),"llmModel":"qwen-vl-plus"}"#
        return Frame(requestId: requestId, cameraId: camera, timestampMilliseconds: timestampMilliseconds, isAlert: isAlert, detection: Array(detection.utf8), assessment: Array(assessment.utf8))
    }

    /// Formats epoch milliseconds as RFC 3339 UTC with milliseconds.
    public static func rfc3339(_ ms: Int64) -> String {
        let seconds = ms / 1000
        let millis = Int(ms % 1000)
        let days = Int(seconds / 86_400)
        let secondOfDay = Int(seconds % 86_400)
        // civil from days (Howard Hinnant)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
        func pad(_ v: Int, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(millis, 3))Z"
    }
}

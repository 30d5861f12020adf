import TrafficModel
public import Websockets

/// Identifies a client connection inside the gateway.
public typealias ConnectionID = UInt64

/// A control message the gateway sends a client (results travel as `result` frames, see
/// `ResultFrame`). The wire format is in docs/websocket-protocol.md.
public enum ServerMessage: Sendable, Equatable {
    /// Acknowledges a subscribe: the cameras now watched (`all` for `"*"`), and those refused.
    case subscribed(cameras: [Int], all: Bool)
    case unsubscribed(cameras: [Int], all: Bool)
    /// The cached latest result of each camera, sent once when it is subscribed without `since`.
    case snapshot([SnapshotEntry])
    /// Recovery from `since` succeeded: exactly `missed` results follow, then live ones.
    case recovered(camera: Int, missed: Int)
    /// Recovery was impossible; a snapshot of the camera follows instead.
    case recoveryFailed(camera: Int, reason: String)
    /// Results `from…to` of the camera's sequence are lost to every client (history trimmed,
    /// or the sequence restarted under a new epoch).
    case gap(camera: Int, from: Int64?, to: Int64?, reason: String)
    /// Redis (and so the live stream) is lost or back.
    case status(redis: Bool)
    /// The gateway is shutting down: reconnect (elsewhere) with your positions.
    case shutdown
    /// A client frame was refused; the connection stays open.
    case error(reason: String, detail: String)
    case pong

    /// Snapshot frames stay within this size (documented in docs/websocket-protocol.md).
    public static let snapshotFrameBytes = 256 * 1024
    /// A latest result larger than this is left out of snapshots (with an `omitted` note), so
    /// one entry and its framing always fit in a snapshot frame.
    static let maximumSnapshotResultBytes = snapshotFrameBytes - 1024

    static let snapshotHead = Array(#"{"type":"snapshot","cameras":["#.utf8)
    static let snapshotTail = Array("]}".utf8)

    /// One camera of a snapshot: `{"camera":7,"offset":…,"epoch":…,"result":{…}}`; a latest
    /// result too large for a snapshot frame is left out with an `omitted` note and its position.
    static func encode(_ entry: SnapshotEntry, into out: inout [UInt8]) {
        func add(_ text: String) { out.append(contentsOf: text.utf8) }
        add(#"{"camera":\#(entry.camera)"#)
        if let latest = entry.latest, latest.payload.count > maximumSnapshotResultBytes {
            if let position = latest.position { add(positionMembers(position)) }
            add(#","result":null,"omitted":{"reason":"too_large","bytes":\#(latest.payload.count),"url":"/api/cameras/\#(entry.camera)/latest"}"#)
        } else if let latest = entry.latest {
            if let position = latest.position { add(positionMembers(position)) }
            add(#","result":"#)
            out.append(contentsOf: latest.payload)
        } else {
            if let position = entry.current { add(positionMembers(position)) }
            add(#","result":null"#)
        }
        add("}")
    }

    /// `,"offset":12,"epoch":"…"`: a position as members of the object being written.
    static func positionMembers(_ position: ResultPosition) -> String {
        #","offset":\#(position.offset),"epoch":\#(JSONText.quoted(position.epoch))"#
    }

    /// The JSON text of the message.
    public func encoded() -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64)
        func add(_ text: String) { out.append(contentsOf: text.utf8) }
        switch self {
        case .subscribed(let cameras, let all), .unsubscribed(let cameras, let all):
            let type = if case .subscribed = self { "subscribed" } else { "unsubscribed" }
            add(#"{"type":"\#(type)","cameras":"#)
            add(all ? #""*""# : "[" + cameras.map(String.init).joined(separator: ",") + "]")
            add("}")
        case .snapshot(let entries):
            out += Self.snapshotHead
            for (index, entry) in entries.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                Self.encode(entry, into: &out)
            }
            out += Self.snapshotTail
        case .recovered(let camera, let missed):
            add(#"{"type":"recovered","camera":\#(camera),"recovered":true,"missed":\#(missed)}"#)
        case .recoveryFailed(let camera, let reason):
            add(#"{"type":"recovered","camera":\#(camera),"recovered":false,"reason":\#(JSONText.quoted(reason))}"#)
        case .gap(let camera, let from, let to, let reason):
            add(#"{"type":"gap","camera":\#(camera)"#)
            if let from { add(#","from":\#(from)"#) }
            if let to { add(#","to":\#(to)"#) }
            add(#","reason":\#(JSONText.quoted(reason))}"#)
        case .status(let redis):
            add(#"{"type":"status","redis":\#(redis ? #""up""# : #""down""#)}"#)
        case .shutdown:
            add(#"{"type":"status","shutdown":true,"reconnect":true}"#)
        case .error(let reason, let detail):
            add(#"{"type":"error","reason":\#(JSONText.quoted(reason)),"detail":\#(JSONText.quoted(detail))}"#)
        case .pong:
            add(#"{"type":"pong"}"#)
        }
        return out
    }
}

/// The `result` frame: `{"type":"result","camera":7,"offset":12,"epoch":"…","result":{…}}`,
/// built once per published result and shared by every client that gets it.
public enum ResultFrame {
    /// The message's bytes (tests and tools).
    public static func encoded(_ result: LiveResult) -> [UInt8] {
        frame(result).withPayload { Array($0) }
    }

    /// Several results in one frame for a batching client:
    /// `{"type":"results","results":[<result message>,…]}`, each element exactly the `result`
    /// message it would have been alone, in order.
    public static func batchFrame(_ results: [LiveResult]) -> OutboundFrame {
        let heads = results.map(head)
        let open = Array(#"{"type":"results","results":["#.utf8)
        let size = open.count + zip(heads, results).reduce(0) { $0 + $1.0.count + $1.1.payload.count + 1 } + (results.count - 1) + 2
        return OutboundFrame(count: size) { out in
            var at = 0
            func put<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
                UnsafeMutableRawBufferPointer(rebasing: out[at..<(at + bytes.count)]).copyBytes(from: bytes)
                at += bytes.count
            }
            put(open)
            for (index, result) in results.enumerated() {
                if index > 0 { put(CollectionOfOne(UInt8(ascii: ","))) }
                put(heads[index])
                put(result.payload)
                put(CollectionOfOne(UInt8(ascii: "}")))
            }
            put(Array("]}".utf8))
        }
    }

    /// `{"type":"result","camera":…[,"offset":…,"epoch":…],"result":`
    static func head(_ result: LiveResult) -> [UInt8] {
        var head = Array(#"{"type":"result","camera":\#(result.camera)"#.utf8)
        if let position = result.position { head += ServerMessage.positionMembers(position).utf8 }
        head += #","result":"#.utf8
        return head
    }

    /// The message as a WebSocket frame, encoded once and shared by every client it goes to:
    /// `{"type":"result","camera":…,"offset":…,"epoch":…,"result":<as published>}`, the payload
    /// copied once, straight into the frame.
    public static func frame(_ result: LiveResult) -> OutboundFrame {
        let head = head(result)
        let payload = result.payload
        return OutboundFrame(count: head.count + payload.count + 1) { out in
            out.copyBytes(from: head)
            UnsafeMutableRawBufferPointer(rebasing: out[head.count...]).copyBytes(from: payload)
            out[out.count - 1] = UInt8(ascii: "}")
        }
    }
}

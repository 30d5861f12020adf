import Foundation

/// A result's camera frame: carried in as base64 (`frameImage` of the detection or the message),
/// stored by the aggregator under `frame:<camera>:<requestId>` (raw bytes, the result's TTL) and
/// served by the gateway at `/api/cameras/<camera>/frames/<requestId>`. The published result keeps
/// only `"frameImageRef":{"url":"/api/cameras/7/frames/<requestId>","bytes":48213}`, so live
/// pushes, `latest`, history and alerts stay small.
public enum FrameImage {
    /// The input field holding the base64 image.
    public static let field = "frameImage"
    /// The result field holding the reference.
    public static let referenceField = "frameImageRef"
    /// Default bound of one decoded frame (8 MiB); larger frames are dropped and counted.
    public static let defaultMaximumBytes = 8 << 20

    /// Why a frame image was not taken.
    public struct Problem: Error, Sendable, Equatable {
        public var reason: String
    }

    /// The gateway path of a frame.
    public static func path(camera: Int, requestId: String) -> String {
        "/api/cameras/\(camera)/frames/\(requestId)"
    }

    /// The `,"frameImageRef":{…}` member spliced into a result. A request id is
    /// `[A-Za-z0-9_:.-]` (validated), safe in a URL path and a JSON string as it is.
    static func reference(camera: Int, requestId: String, bytes: Int) -> String {
        #","\#(referenceField)":{"url":"\#(path(camera: camera, requestId: requestId))","bytes":\#(bytes)}"#
    }

    /// Decodes the base64 (or `data:…;base64,` URL) string value `member` of `document`:
    /// standard or URL-safe alphabet, padding optional, line breaks ignored.
    static func decode(_ document: [UInt8], _ member: JSONMember, maximumBytes: Int) -> Result<[UInt8], Problem> {
        guard member.kind == .string else {
            return .failure(Problem(reason: "'\(field)' is not a string"))
        }
        // Escapes (`\/`) only lengthen the JSON text: refuse what cannot fit even so, before
        // decoding it (four base64 characters carry three bytes).
        if (member.valueRange.count - 2) / 8 * 3 > maximumBytes + 3 {
            return .failure(Problem(reason: "'\(field)' of about \((member.valueRange.count - 2) / 4 * 3) bytes is over the \(maximumBytes)-byte frame bound"))
        }
        var text = document.withUnsafeBufferPointer { JSONScanner.decodeString($0, member.valueRange) }
        if text.hasPrefix("data:") {
            guard let comma = text.firstIndex(of: ","), text[..<comma].hasSuffix(";base64") else {
                return .failure(Problem(reason: "'\(field)' is a data: URL without ;base64"))
            }
            text = String(text[text.index(after: comma)...])
        }
        var base64 = Array(text.utf8)
        base64.removeAll { $0 == 10 || $0 == 13 || $0 == 32 }
        if base64.count / 4 * 3 > maximumBytes + 3 {
            return .failure(Problem(reason: "'\(field)' of about \(base64.count / 4 * 3) bytes is over the \(maximumBytes)-byte frame bound"))
        }
        for i in base64.indices {
            if base64[i] == UInt8(ascii: "-") { base64[i] = UInt8(ascii: "+") } else if base64[i] == UInt8(ascii: "_") { base64[i] = UInt8(ascii: "/") }
        }
        while base64.count % 4 != 0 { base64.append(UInt8(ascii: "=")) }
        guard !base64.isEmpty, let data = Data(base64Encoded: Data(base64)) else {
            return .failure(Problem(reason: "'\(field)' is not base64"))
        }
        guard data.count <= maximumBytes else {
            return .failure(Problem(reason: "'\(field)' of \(data.count) bytes is over the \(maximumBytes)-byte frame bound"))
        }
        return .success(Array(data))
    }

    /// The media type of a stored frame, from its first bytes. Only raster formats a browser
    /// shows in an `<img>` are named; anything else (SVG, HTML, unknown) is served as
    /// `application/octet-stream`, so a crafted frame can never run as a page.
    public static func mediaType(of bytes: some Collection<UInt8>) -> String {
        let head = Array(bytes.prefix(12))
        func starts(_ magic: [UInt8]) -> Bool { head.count >= magic.count && Array(head.prefix(magic.count)) == magic }
        if starts([0xFF, 0xD8, 0xFF]) { return "image/jpeg" }
        if starts([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return "image/png" }
        if starts(Array("GIF87a".utf8)) || starts(Array("GIF89a".utf8)) { return "image/gif" }
        if head.count >= 12, starts(Array("RIFF".utf8)), Array(head[8..<12]) == Array("WEBP".utf8) { return "image/webp" }
        if starts(Array("BM".utf8)) { return "image/bmp" }
        return "application/octet-stream"
    }
}

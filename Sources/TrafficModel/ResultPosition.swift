/// Where a published result sits in its camera's sequence: a gap-free counter plus the epoch of
/// that counter.
///
/// The aggregator's write transaction hands out `offset` 1, 2, 3… per camera and stores the result
/// under that offset in the camera's history. `epoch` changes whenever the counter starts over
/// (its Redis hash was lost), so a position from an older epoch can never be mistaken for one of
/// the current sequence.
///
/// On the wire the aggregator puts the position first in the published JSON object:
/// `{"position":{"offset":12,"epoch":"1732245600123456"},"requestId":…}`.
public struct ResultPosition: Sendable, Hashable, CustomStringConvertible {
    public var offset: Int64
    public var epoch: String

    public init(offset: Int64, epoch: String) {
        self.offset = offset
        self.epoch = epoch
    }

    public var description: String { "\(epoch)/\(offset)" }

    /// The wire format's fixed parts: a positioned payload starts with `wireHead`, the offset's
    /// digits, `wireEpochKey`, the epoch and `"},`, then the result's own members.
    public static let wireHead = Array(#"{"position":{"offset":"#.utf8)
    public static let wireEpochKey = Array(#","epoch":""#.utf8)

    /// The position at the head of a published result, or nil when the payload carries none
    /// (published by something other than the aggregator).
    ///
    /// Only the exact prefix the aggregator writes is accepted; this is a fixed-format read,
    /// not a JSON parse, so it costs a few dozen byte comparisons per message.
    public static func parse(prefixOf payload: [UInt8]) -> ResultPosition? {
        payload.withUnsafeBufferPointer { parse(prefixOf: UnsafeRawBufferPointer($0)) }
    }

    /// The same, on raw bytes.
    public static func parse(prefixOf bytes: UnsafeRawBufferPointer) -> ResultPosition? {
        let head = wireHead
        guard bytes.count > head.count + 16 else { return nil }
        for i in 0..<head.count where bytes[i] != head[i] { return nil }
        var i = head.count
        var offset: Int64 = 0
        var digits = 0
        while i < bytes.count, bytes[i] >= 48, bytes[i] <= 57, digits < 18 {
            offset = offset * 10 + Int64(bytes[i] - 48)
            i += 1
            digits += 1
        }
        guard digits > 0 else { return nil }
        let middle = wireEpochKey
        guard i + middle.count < bytes.count else { return nil }
        for j in 0..<middle.count where bytes[i + j] != middle[j] { return nil }
        i += middle.count
        let epochStart = i
        while i < bytes.count, bytes[i] != 34, i - epochStart <= 64 { i += 1 }
        guard i < bytes.count, bytes[i] == 34, i > epochStart else { return nil }
        let epoch = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[epochStart..<i]), as: UTF8.self)
        return ResultPosition(offset: offset, epoch: epoch)
    }
}

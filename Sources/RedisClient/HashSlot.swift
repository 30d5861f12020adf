/// Redis Cluster's key → slot rule: CRC16 (XMODEM) of the key modulo 16384, or of its hash tag —
/// the text between the first `{` and the first `}` after it, when that is not empty — so keys
/// that share a tag share a slot (cluster spec, "Hash tags").
public enum HashSlot {
    /// Slots in a cluster.
    public static let count = 16_384

    /// The slot of `key`.
    public static func of(_ key: String) -> Int {
        var key = key
        return key.withUTF8 { of(bytes: $0) }
    }

    /// The slot of a key given as bytes.
    public static func of<Bytes: RandomAccessCollection>(bytes key: Bytes) -> Int where Bytes.Element == UInt8, Bytes.Index == Int {
        Int(crc16(hashed(key)) & 0x3FFF)
    }

    /// The part of the key that is hashed: the tag when there is a non-empty one, else all of it.
    public static func hashed<Bytes: RandomAccessCollection>(_ key: Bytes) -> Bytes.SubSequence where Bytes.Element == UInt8, Bytes.Index == Int {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")),
              let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 else { return key[...] }
        return key[(open + 1)..<close]
    }

    /// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), as Redis computes it.
    public static func crc16<Bytes: Sequence>(_ bytes: Bytes) -> UInt16 where Bytes.Element == UInt8 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 {
                crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
            }
        }
        return crc
    }
}

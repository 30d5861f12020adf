import COpenSSL

/// SHA-256 from OpenSSL (libcrypto).
public enum SHA256 {
    /// The 32-byte digest of `bytes`.
    public static func digest(_ bytes: [UInt8]) throws(DigestError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let status = bytes.withUnsafeBufferPointer { traffic_sha256($0.baseAddress, $0.count, &out) }
        guard status == 0 else { throw DigestError.taken(after: .sha256) }
        return out
    }

    /// The digest as 64 lower-case hex digits.
    public static func hexDigest(_ bytes: [UInt8]) throws(DigestError) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(64)
        for byte in try digest(bytes) {
            text.append(digits[Int(byte >> 4)])
            text.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: text, as: UTF8.self)
    }
}

import COpenSSL

/// HMAC-SHA256 from OpenSSL (libcrypto), for token checks.
public enum HMACSHA256 {
    /// The 32-byte MAC of `message` under `key`.
    public static func authenticate(_ message: [UInt8], key: [UInt8]) throws(DigestError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        let status = key.withUnsafeBytes { k in
            message.withUnsafeBufferPointer { m in
                traffic_hmac_sha256(k.baseAddress, Int32(k.count), m.baseAddress, m.count, &out)
            }
        }
        guard status == 0 else { throw DigestError.taken(after: .hmacSHA256) }
        return out
    }

    /// Compares in time independent of where the inputs differ.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        if a.isEmpty { return true }
        return traffic_memequal(a, b, a.count) != 0
    }
}

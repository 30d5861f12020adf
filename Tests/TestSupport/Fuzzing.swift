/// Hostile input for soak and fuzz tests.
public enum Fuzzing {
    /// Random damage: truncation, byte flips, deletions, insertions, random bytes, deep nesting,
    /// a misspelt required field.
    public static func mutate(_ input: [UInt8], _ rng: inout SplitMix) -> [UInt8] {
        var bytes = input
        if bytes.isEmpty { return Array("{".utf8) }
        switch rng.next() % 7 {
        case 0: bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count))))
        case 1: for _ in 0..<(1 + rng.next() % 8) { bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next()) }
        case 2: bytes.remove(at: Int(rng.next() % UInt64(bytes.count)))
        case 3: bytes.insert(UInt8(truncatingIfNeeded: rng.next()), at: Int(rng.next() % UInt64(bytes.count)))
        case 4: bytes = (0..<Int(rng.next() % 300)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        case 5: bytes = Array(("{\"requestId\":" + String(repeating: "[", count: 200)).utf8)
        default: bytes = Array(String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "riskAssessment", with: "riskAssesment").utf8)
        }
        return bytes
    }

    /// `count` random bytes.
    public static func randomBytes(_ count: Int, _ rng: inout SplitMix) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var i = 0
        while i < count {
            var word = rng.next()
            for _ in 0..<8 where i < count {
                bytes[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
        return bytes
    }
}

/// A small deterministic random generator for fuzzing.
public struct SplitMix: Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Why a byte sequence is not valid JSON, and where.
public struct JSONSyntaxError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Byte offset of the problem from the start of the document.
    public var offset: Int
    public var reason: String

    public var description: String { "\(reason) at byte \(offset)" }
}

/// The type of a JSON value.
public enum JSONValueKind: Sendable, Equatable {
    case object, array, string, number, bool, null
}

/// One member of a JSON object, located by byte ranges in the scanned document.
public struct JSONMember: Sendable, Equatable {
    /// The decoded member name.
    public var key: String
    /// The name including its quotes.
    public var keyRange: Range<Int>
    /// The value exactly as written (no surrounding white space).
    public var valueRange: Range<Int>
    public var kind: JSONValueKind
}

/// A validating, non-allocating JSON scanner over bytes (RFC 8259, UTF-8 checked).
///
/// It does not build a tree: it validates a whole document and reports the members of an
/// object as byte ranges, so a message can be checked and then spliced into another without
/// decoding and re-encoding nested values (detections carry large arrays).
public struct JSONScanner: ~Copyable {
    private let bytes: UnsafeBufferPointer<UInt8>
    private var index: Int
    private var depth = 0
    /// Nesting deeper than this is rejected (protects the stack from hostile input).
    public static let maximumDepth = 64

    private init(_ bytes: UnsafeBufferPointer<UInt8>, start: Int) {
        self.bytes = bytes
        self.index = start
    }

    /// Validates `bytes` as exactly one JSON object (white space around it allowed) and returns
    /// its members in document order.
    public static func objectMembers(_ bytes: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> [JSONMember] {
        var scanner = JSONScanner(bytes, start: 0)
        scanner.skipWhitespace()
        guard scanner.index < bytes.count else { throw scanner.error("empty document") }
        guard bytes[scanner.index] == UInt8(ascii: "{") else { throw scanner.error("expected a JSON object") }
        let members = try scanner.scanObject(collect: true)
        scanner.skipWhitespace()
        guard scanner.index == bytes.count else { throw scanner.error("unexpected data after the object") }
        return members
    }

    /// Members of an object value inside an already validated document.
    public static func objectMembers(_ bytes: UnsafeBufferPointer<UInt8>, in range: Range<Int>) -> [JSONMember] {
        var scanner = JSONScanner(UnsafeBufferPointer(rebasing: bytes[..<range.upperBound]), start: range.lowerBound)
        return (try? scanner.scanObject(collect: true)) ?? [] // try?: the document was validated; a range that is no object has no members
    }

    /// Elements of an array value inside an already validated document: each one's range and kind.
    public static func arrayElements(_ bytes: UnsafeBufferPointer<UInt8>, in range: Range<Int>) -> [(range: Range<Int>, kind: JSONValueKind)] {
        var scanner = JSONScanner(UnsafeBufferPointer(rebasing: bytes[..<range.upperBound]), start: range.lowerBound)
        return (try? scanner.scanArrayElements()) ?? [] // try?: the document was validated; a range that is no array has no elements
    }

    /// Decodes a string value (range including quotes) of a validated document.
    public static func decodeString(_ bytes: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> String {
        let inner = (range.lowerBound + 1)..<(range.upperBound - 1)
        if !bytes[inner].contains(UInt8(ascii: "\\")) {
            return String(decoding: UnsafeBufferPointer(rebasing: bytes[inner]), as: UTF8.self)
        }
        var out: [UInt8] = []
        out.reserveCapacity(inner.count)
        var i = inner.lowerBound
        while i < inner.upperBound {
            let b = bytes[i]
            if b != UInt8(ascii: "\\") { out.append(b); i += 1; continue }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "u"):
                var scalar = hex4(bytes, i)
                i += 4
                if (0xD800..<0xDC00).contains(scalar), i + 6 <= inner.upperBound, bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") {
                    let low = hex4(bytes, i + 2)
                    if (0xDC00..<0xE000).contains(low) {
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                        i += 6
                    }
                }
                let value = Unicode.Scalar(scalar) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(Character(value)).utf8))
            default: out.append(e)
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hex4(_ bytes: UnsafeBufferPointer<UInt8>, _ at: Int) -> UInt32 {
        var value: UInt32 = 0
        for k in 0..<4 { value = value << 4 | UInt32(hexValue(bytes[at + k]) ?? 0) }
        return value
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return b - UInt8(ascii: "A") + 10
        default: return nil
        }
    }

    // MARK: - Scanning

    private func error(_ reason: String) -> JSONSyntaxError {
        JSONSyntaxError(offset: index, reason: reason)
    }

    private mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    @discardableResult
    private mutating func scanValue() throws(JSONSyntaxError) -> JSONValueKind {
        guard index < bytes.count else { throw error("unexpected end of document") }
        switch bytes[index] {
        case UInt8(ascii: "{"): _ = try scanObject(collect: false); return .object
        case UInt8(ascii: "["): try scanArray(); return .array
        case UInt8(ascii: "\""): try scanString(); return .string
        case UInt8(ascii: "t"): try literal("true"); return .bool
        case UInt8(ascii: "f"): try literal("false"); return .bool
        case UInt8(ascii: "n"): try literal("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try scanNumber(); return .number
        default: throw error("unexpected character '\(Self.printable(bytes[index]))'")
        }
    }

    private static func printable(_ b: UInt8) -> String {
        b >= 0x20 && b < 0x7F ? String(UnicodeScalar(b)) : "\\x" + String(b, radix: 16)
    }

    private mutating func enter() throws(JSONSyntaxError) {
        depth += 1
        if depth > Self.maximumDepth { throw error("nesting deeper than \(Self.maximumDepth)") }
    }

    private mutating func scanObject(collect: Bool) throws(JSONSyntaxError) -> [JSONMember] {
        try enter()
        index += 1 // {
        var members: [JSONMember] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return members
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw error("expected a member name") }
            let keyStart = index
            try scanString()
            let keyRange = keyStart..<index
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw error("expected ':' after member name") }
            index += 1
            skipWhitespace()
            let valueStart = index
            let kind = try scanValue()
            if collect {
                members.append(JSONMember(key: Self.decodeString(bytes, keyRange), keyRange: keyRange, valueRange: valueStart..<index, kind: kind))
            }
            skipWhitespace()
            guard index < bytes.count else { throw error("unterminated object") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "}") { index += 1; break }
            throw error("expected ',' or '}' in object")
        }
        depth -= 1
        return members
    }

    private mutating func scanArray() throws(JSONSyntaxError) {
        try enter()
        index += 1 // [
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            try scanValue()
            skipWhitespace()
            guard index < bytes.count else { throw error("unterminated array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { index += 1; break }
            throw error("expected ',' or ']' in array")
        }
        depth -= 1
    }

    private mutating func scanArrayElements() throws(JSONSyntaxError) -> [(range: Range<Int>, kind: JSONValueKind)] {
        guard index < bytes.count, bytes[index] == UInt8(ascii: "[") else { throw error("expected an array") }
        index += 1
        var elements: [(range: Range<Int>, kind: JSONValueKind)] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { return elements }
        while true {
            skipWhitespace()
            let start = index
            let kind = try scanValue()
            elements.append((start..<index, kind))
            skipWhitespace()
            guard index < bytes.count else { throw error("unterminated array") }
            if bytes[index] == UInt8(ascii: ",") { index += 1; continue }
            if bytes[index] == UInt8(ascii: "]") { break }
            throw error("expected ',' or ']' in array")
        }
        return elements
    }

    private mutating func literal(_ word: StaticString) throws(JSONSyntaxError) {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw error("invalid literal") }
        let expected = UnsafeBufferPointer(start: word.utf8Start, count: count)
        for k in 0..<count where bytes[index + k] != expected[k] { throw error("invalid literal") }
        index += count
    }

    private mutating func scanNumber() throws(JSONSyntaxError) {
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid number") }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid number: digit expected after '.'") }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard index < bytes.count, isDigit(bytes[index]) else { throw error("invalid number: exponent digits expected") }
            while index < bytes.count, isDigit(bytes[index]) { index += 1 }
        }
    }

    private func isDigit(_ b: UInt8) -> Bool { b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") }

    /// Scans a string (index at the opening quote), checking escapes and UTF-8.
    private mutating func scanString() throws(JSONSyntaxError) {
        index += 1
        while index < bytes.count {
            // Eight plain ASCII bytes at a time (no quote, backslash, control or non-ASCII
            // byte among them): the common case in long string values.
            while index + 8 <= bytes.count {
                let word = UnsafeRawPointer(bytes.baseAddress! + index).loadUnaligned(as: UInt64.self)
                if Self.hasSpecialByte(word) { break }
                index += 8
            }
            guard index < bytes.count else { break }
            let b = bytes[index]
            if b == UInt8(ascii: "\"") { index += 1; return }
            if b == UInt8(ascii: "\\") {
                guard index + 1 < bytes.count else { break }
                switch bytes[index + 1] {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                    index += 2
                case UInt8(ascii: "u"):
                    guard index + 6 <= bytes.count else { throw error("truncated \\u escape") }
                    for k in 2..<6 where Self.hexValue(bytes[index + k]) == nil { throw error("invalid \\u escape") }
                    let unit = Self.hex4(bytes, index + 2)
                    if (0xDC00..<0xE000).contains(unit) { throw error("unpaired low surrogate escape") }
                    if (0xD800..<0xDC00).contains(unit) {
                        // A high surrogate names a character only with the low one after it.
                        guard index + 12 <= bytes.count, bytes[index + 6] == UInt8(ascii: "\\"), bytes[index + 7] == UInt8(ascii: "u"),
                              (8..<12).allSatisfy({ Self.hexValue(bytes[index + $0]) != nil }),
                              (0xDC00..<0xE000).contains(Self.hex4(bytes, index + 8)) else {
                            throw error("unpaired high surrogate escape")
                        }
                        index += 6
                    }
                    index += 6
                default:
                    throw error("invalid escape '\\\(Self.printable(bytes[index + 1]))'")
                }
                continue
            }
            if b < 0x20 { throw error("control character in string") }
            if b < 0x80 { index += 1; continue }
            try scanUTF8Sequence()
        }
        throw error("unterminated string")
    }

    /// Whether any byte of `word` is `"`, `\\`, below 0x20 or at or above 0x80 (SWAR test).
    @inline(__always)
    private static func hasSpecialByte(_ word: UInt64) -> Bool {
        let ones: UInt64 = 0x0101_0101_0101_0101
        let highs: UInt64 = 0x8080_8080_8080_8080
        func hasZeroByte(_ v: UInt64) -> Bool { (v &- ones) & ~v & highs != 0 }
        let control = (word &- ones &* 0x20) & ~word & highs != 0 // a byte < 0x20
        return word & highs != 0 || control || hasZeroByte(word ^ (ones &* 0x22)) || hasZeroByte(word ^ (ones &* 0x5C))
    }

    /// Validates one multi-byte UTF-8 sequence (no overlongs, no surrogates, ≤ U+10FFFF).
    private mutating func scanUTF8Sequence() throws(JSONSyntaxError) {
        let b0 = bytes[index]
        let length: Int
        var lower: UInt8 = 0x80
        var upper: UInt8 = 0xBF
        switch b0 {
        case 0xC2...0xDF: length = 2
        case 0xE0: length = 3; lower = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: length = 3
        case 0xED: length = 3; upper = 0x9F
        case 0xF0: length = 4; lower = 0x90
        case 0xF1...0xF3: length = 4
        case 0xF4: length = 4; upper = 0x8F
        default: throw error("invalid UTF-8")
        }
        guard index + length <= bytes.count else { throw error("invalid UTF-8 (truncated sequence)") }
        let b1 = bytes[index + 1]
        guard b1 >= lower && b1 <= upper else { throw error("invalid UTF-8") }
        for k in 2..<length where bytes[index + k] & 0xC0 != 0x80 { throw error("invalid UTF-8") }
        index += length
    }
}

import Testing
@testable import TrafficModel

@Suite struct JSONScannerTests {
    func members(_ text: String) throws -> [JSONMember] {
        let bytes = Array(text.utf8)
        return try bytes.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in try JSONScanner.objectMembers(buffer) }
    }

    func syntaxError(_ bytes: [UInt8]) -> JSONSyntaxError? {
        do {
            _ = try bytes.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in try JSONScanner.objectMembers(buffer) }
            return nil
        } catch {
            return error
        }
    }

    @Test func reportsTopLevelMembersWithRangesAndKinds() throws {
        let text = #" { "a" : 1.5e3, "b":[1,{"x":null}], "c\u0041":"s\"q", "d":true, "e":{"f":-0} } "#
        let m = try members(text)
        #expect(m.map(\.key) == ["a", "b", "cA", "d", "e"])
        #expect(m.map(\.kind) == [.number, .array, .string, .bool, .object])
        let bytes = Array(text.utf8)
        #expect(String(decoding: bytes[m[1].valueRange], as: UTF8.self) == #"[1,{"x":null}]"#)
        #expect(bytes.withUnsafeBufferPointer { JSONScanner.decodeString($0, m[2].valueRange) } == "s\"q")
        let inner = bytes.withUnsafeBufferPointer { JSONScanner.objectMembers($0, in: m[4].valueRange) }
        #expect(inner.map(\.key) == ["f"])
    }

    @Test func decodesEscapesIncludingSurrogatePairs() throws {
        let text = #"{"k":"a\n\t\u00e9\ud83d\ude97\/"}"#
        let bytes = Array(text.utf8)
        let m = try members(text)
        #expect(bytes.withUnsafeBufferPointer { JSONScanner.decodeString($0, m[0].valueRange) } == "a\n\té🚗/")
    }

    @Test(arguments: [
        ("", "empty document", 0),
        ("[1]", "expected a JSON object", 0),
        (#"{"a":1"#, "unterminated object", 6),
        (#"{"a":1,}"#, "expected a member name", 7),
        (#"{"a" 1}"#, "expected ':'", 5),
        (#"{"a":01}"#, "expected ',' or '}'", 6),
        (#"{"a":1.}"#, "digit expected after '.'", 7),
        (#"{"a":tru}"#, "invalid literal", 5),
        (#"{"a":"x\q"}"#, "invalid escape", 7),
        (#"{"a":"\u12G4"}"#, "invalid \\u escape", 6),
        (#"{"a":"abc}"#, "unterminated string", 10),
        (#"{"a":1} x"#, "unexpected data after the object", 8),
        (#"{"a":[1,2}"#, "expected ',' or ']'", 9),
    ])
    func rejectsMalformedJSONWithOffset(text: String, reason: String, offset: Int) {
        let error = syntaxError(Array(text.utf8))
        #expect(error?.reason.contains(reason) == true, "got \(String(describing: error))")
        #expect(error?.offset == offset)
    }

    @Test func rejectsInvalidUTF8AndControlCharacters() {
        let prefix = Array(#"{"a":""#.utf8)
        let suffix = Array(#""}"#.utf8)
        for bad: [UInt8] in [[0xFF], [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3]] {
            #expect(syntaxError(prefix + bad + suffix)?.reason.hasPrefix("invalid UTF-8") == true, "\(bad)")
        }
        #expect(syntaxError(prefix + [0x01] + suffix)?.reason == "control character in string")
        #expect(syntaxError(prefix + [0xC3, 0xA9, 0xF0, 0x9F, 0x9A, 0x97] + suffix) == nil, "valid multi-byte UTF-8")
    }

    @Test func limitsNestingDepth() {
        let deep = "{\"a\":" + String(repeating: "[", count: 100) + String(repeating: "]", count: 100) + "}"
        #expect(syntaxError(Array(deep.utf8))?.reason.contains("nesting deeper") == true)
        let ok = "{\"a\":" + String(repeating: "[", count: 30) + String(repeating: "]", count: 30) + "}"
        #expect(syntaxError(Array(ok.utf8)) == nil)
    }

    @Test func stringScanFindsEverySpecialByteAtEveryPositionOfAWord() throws {
        // The string scan skips eight plain bytes at a time; whatever sits anywhere in such a
        // word must still be seen, at its exact offset.
        let prefix = Array(#"{"k":""#.utf8)
        for position in 0..<24 {
            var body = [UInt8](repeating: UInt8(ascii: "a"), count: 24)
            body[position] = 0x01
            let control = syntaxError(prefix + body + Array(#""}"#.utf8))
            #expect(control?.offset == prefix.count + position, "control byte at \(position)")
            body[position] = 0xFF
            #expect(syntaxError(prefix + body + Array(#""}"#.utf8))?.offset == prefix.count + position, "invalid UTF-8 at \(position)")
            body[position] = UInt8(ascii: "\"")
            #expect(syntaxError(prefix + body + Array(#""}"#.utf8)) != nil, "a quote ends the string at \(position)")
            var escaped = body
            escaped.replaceSubrange(position...position, with: Array(#"\""#.utf8))
            #expect(syntaxError(prefix + escaped + Array(#""}"#.utf8)) == nil, "escaped quote at \(position)")
            var accented = body
            accented.replaceSubrange(position...position, with: Array("é".utf8))
            #expect(syntaxError(prefix + accented + Array(#""}"#.utf8)) == nil, "two-byte UTF-8 at \(position)")
        }
    }
}

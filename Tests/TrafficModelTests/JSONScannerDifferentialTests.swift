import Foundation
import Testing
import TestSupport
@testable import TrafficModel

/// `JSONScanner` against Foundation's parser on random documents and on damaged copies of them:
/// both accept or both refuse, and what both accept they read the same way.
@Suite struct JSONScannerDifferentialTests {
    /// A random JSON text generator (valid documents; keys unique per object).
    struct Generator {
        var rng: SplitMix

        mutating func int(_ bound: Int) -> Int { Int(rng.next() % UInt64(bound)) }

        mutating func space() -> String { ["", " ", "\n", "\t ", "\r\n  "][int(5)] }

        mutating func string() -> String {
            let pieces = ["a", "Z", "é", "日本", "😀", "\\\"", "\\\\", "\\/", "\\n", "\\t", "\\u00e9", "\\u65E5", "\\ud83d\\ude00", " ", "camera", "0"]
            return "\"" + (0..<int(6)).map { _ in pieces[int(pieces.count)] }.joined() + "\""
        }

        mutating func number() -> String {
            var text = int(4) == 0 ? "-" : ""
            text += int(3) == 0 ? "0" : String(1 + int(99_999))
            if int(2) == 0 { text += "." + String(int(1000)) }
            if int(4) == 0 { text += ["e", "E", "e+", "e-"][int(4)] + String(int(30)) }
            return text
        }

        mutating func value(depth: Int) -> String {
            switch depth > 3 ? 2 + int(4) : int(6) {
            case 0: return object(depth: depth + 1)
            case 1: return array(depth: depth + 1)
            case 2: return string()
            case 3: return number()
            case 4: return ["true", "false"][int(2)]
            default: return "null"
            }
        }

        mutating func array(depth: Int) -> String {
            "[" + space() + (0..<int(4)).map { _ in value(depth: depth) }.joined(separator: space() + "," + space()) + space() + "]"
        }

        mutating func object(depth: Int) -> String {
            var keys = Set<String>()
            var members: [String] = []
            for _ in 0..<int(5) {
                let key = string()
                // Unique by what the key decodes to (escapes may spell the same text two ways).
                guard let decoded = try? JSONSerialization.jsonObject(with: Data(key.utf8), options: .fragmentsAllowed) as? String, keys.insert(decoded).inserted else { continue } // try?: a key Foundation cannot read is left out
                members.append(space() + key + space() + ":" + space() + value(depth: depth))
            }
            return "{" + members.joined(separator: ",") + space() + "}"
        }
    }

    static func foundation(_ bytes: [UInt8]) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any] // try?: rejected is the verdict compared
    }

    static func scanner(_ bytes: [UInt8]) -> [JSONMember]? {
        bytes.withUnsafeBufferPointer { try? JSONScanner.objectMembers($0) } // try?: rejected is the verdict compared
    }

    /// Whether the scanner's reading of one value matches Foundation's; nil when it does, else
    /// what differs.
    static func difference(_ member: JSONMember, _ value: Any, in bytes: [UInt8]) -> String? {
        let text = String(decoding: bytes[member.valueRange], as: UTF8.self)
        switch member.kind {
        case .null: return value is NSNull ? nil : "null vs \(value)"
        case .string:
            let decoded = bytes.withUnsafeBufferPointer { JSONScanner.decodeString($0, member.valueRange) }
            return (value as? String) == decoded ? nil : "string \(decoded) vs \(value)"
        case .bool, .number:
            guard let number = value as? NSNumber else { return "\(text) vs \(value)" }
            if member.kind == .bool { return (text == "true") == number.boolValue ? nil : "\(text) vs \(number)" }
            guard let double = Double(text) else { return "unreadable number \(text)" }
            return double == number.doubleValue || abs(double - number.doubleValue) <= abs(double) * 1e-15 ? nil : "\(text) vs \(number)"
        case .array:
            guard let array = value as? [Any] else { return "array vs \(value)" }
            let elements = bytes.withUnsafeBufferPointer { JSONScanner.arrayElements($0, in: member.valueRange) }
            guard elements.count == array.count else { return "\(elements.count) elements vs \(array.count)" }
            for (element, item) in zip(elements, array) {
                let inner = JSONMember(key: "", keyRange: 0..<0, valueRange: element.range, kind: element.kind)
                if let difference = difference(inner, item, in: bytes) { return difference }
            }
            return nil
        case .object:
            guard let object = value as? [String: Any] else { return "object vs \(value)" }
            let members = bytes.withUnsafeBufferPointer { JSONScanner.objectMembers($0, in: member.valueRange) }
            return difference(members, object, in: bytes)
        }
    }

    static func difference(_ members: [JSONMember], _ object: [String: Any], in bytes: [UInt8]) -> String? {
        guard Set(members.map(\.key)) == Set(object.keys), members.count == object.count else { return "keys \(members.map(\.key)) vs \(object.keys.sorted())" }
        for member in members {
            if let difference = difference(member, object[member.key]!, in: bytes) { return "\(member.key): \(difference)" }
        }
        return nil
    }

    @Test func randomDocumentsAreReadAsFoundationReadsThem() throws {
        var generator = Generator(rng: SplitMix(seed: 2026))
        for round in 0..<3_000 {
            let document = Array((generator.space() + generator.object(depth: 0) + generator.space()).utf8)
            let expected = try #require(Self.foundation(document), "round \(round): Foundation refused our own document: \(String(decoding: document, as: UTF8.self))")
            let members = try #require(Self.scanner(document), "round \(round): the scanner refused a valid document: \(String(decoding: document, as: UTF8.self))")
            let difference = Self.difference(members, expected, in: document)
            #expect(difference == nil, "round \(round): \(difference ?? "") in \(String(decoding: document, as: UTF8.self))")
            if difference != nil { return }
        }
    }

    @Test func damagedDocumentsAreAcceptedOrRefusedAsFoundationDoes() throws {
        var generator = Generator(rng: SplitMix(seed: 8))
        var rng = SplitMix(seed: 77)
        var disagreements: [String] = []
        for _ in 0..<5_000 {
            let document = Fuzzing.mutate(Array(generator.object(depth: 0).utf8), &rng)
            let foundation = Self.foundation(document)
            let scanner = Self.scanner(document)
            switch (foundation, scanner) {
            case (nil, nil): continue
            case (let object?, let members?):
                if let difference = Self.difference(members, object, in: document) { disagreements.append("read differently (\(difference)): \(String(decoding: document, as: UTF8.self))") }
            case (nil, _?):
                // (Found this way: unpaired surrogate escapes, now refused as Foundation does.)
                disagreements.append("only the scanner accepted: \(document.map { String(format: "%02x", $0) }.joined())")
            case (_?, nil):
                disagreements.append("only Foundation accepted: \(String(decoding: document, as: UTF8.self))")
            }
            if disagreements.count >= 5 { break }
        }
        #expect(disagreements.isEmpty, "\(disagreements.joined(separator: "\n"))")
    }

    @Test func unpairedSurrogateEscapesAreRefused() {
        for (text, reason) in [(#"{"a":"\ude00"}"#, "unpaired low surrogate"), (#"{"a":"\ud83d"}"#, "unpaired high surrogate"), (#"{"a":"\ud83dx"}"#, "unpaired high surrogate"),
                               (#"{"a":"\ud83d\u0041"}"#, "unpaired high surrogate")] {
            let bytes = Array(text.utf8)
            #expect(throws: JSONSyntaxError.self, "\(text)") { try bytes.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in _ = try JSONScanner.objectMembers(buffer) } }
            let message = bytes.withUnsafeBufferPointer { buffer -> String in
                do throws(JSONSyntaxError) { _ = try JSONScanner.objectMembers(buffer); return "" } catch { return error.reason }
            }
            #expect(message.contains(reason), "\(text): \(message)")
        }
        #expect(Self.scanner(Array(#"{"a":"\ud83d\ude00"}"#.utf8))?.first?.kind == .string, "a pair is one character")
    }
}

import Foundation
public import Regression
public import RedisClient
import TrafficModel

/// The wire format of the task stream, shared with the original Python framework (its workers
/// read a stream this tool writes, and the other way round). See docs/experiment.md.
///
/// - The first entry is the header: `type`=`header`, `feature_names` (JSON array of strings),
///   `target_name`, `n_samples` (integer), `normalization` (JSON object `{"min":[…],"max":[…]}`
///   with the per-feature values used; absent in streams the original writes).
/// - Every further entry is one sample: `type`=`sample`, `task_id` (0-based CSV row),
///   `feature_values` (JSON array of the min-max normalised numbers), `target` (the CSV's
///   number, as written).
public enum StreamFormat {
    /// The header entry of a stream.
    public struct Header: Sendable, Equatable {
        public var featureNames: [String]
        public var targetName: String
        public var sampleCount: Int
        public var normalization: Normalization?

        public init(featureNames: [String], targetName: String, sampleCount: Int, normalization: Normalization?) {
            self.featureNames = featureNames
            self.targetName = targetName
            self.sampleCount = sampleCount
            self.normalization = normalization
        }
    }

    /// One sample entry.
    public struct Sample: Sendable, Equatable {
        public var taskID: Int
        public var featureValues: [Double]
        public var target: Double
    }

    public static func headerFields(_ header: Header) -> [RedisStreamField] {
        var fields = [
            RedisStreamField("type", "header"),
            RedisStreamField("feature_names", jsonArray(header.featureNames.map(JSONText.quoted))),
            RedisStreamField("target_name", header.targetName),
            RedisStreamField("n_samples", String(header.sampleCount)),
        ]
        if let normalization = header.normalization {
            fields.append(RedisStreamField("normalization", #"{"min":\#(jsonArray(normalization.minimum.map(number))),"max":\#(jsonArray(normalization.maximum.map(number)))}"#))
        }
        return fields
    }

    public static func sampleFields(taskID: Int, featureValues: ArraySlice<Double>, target: String) -> [RedisStreamField] {
        [
            RedisStreamField("type", "sample"),
            RedisStreamField("task_id", String(taskID)),
            RedisStreamField("feature_values", jsonArray(featureValues.map(number))),
            RedisStreamField("target", target),
        ]
    }

    /// What an entry is.
    public enum Entry: Sendable, Equatable {
        case header(Header)
        case sample(Sample)
    }

    /// Reads one entry; the error names the entry id and the field.
    public static func decode(_ entry: RedisStreamEntry) throws(ExperimentError) -> Entry {
        func field(_ name: String) throws(ExperimentError) -> String {
            guard let value = entry[name] else { throw ExperimentError(.stream, "stream entry \(entry.id): field '\(name)' is missing") }
            return String(decoding: value, as: UTF8.self)
        }
        func bad(_ name: String, _ why: String, cause: (any Error)? = nil) -> ExperimentError {
            ExperimentError(.stream, "stream entry \(entry.id): field '\(name)' \(why)", cause: cause)
        }
        /// The field's text as JSON (Foundation's reader: strict, every escape).
        func json(_ name: String, _ text: String, expected: String) throws(ExperimentError) -> Any {
            do { return try JSONSerialization.jsonObject(with: Data(text.utf8)) } catch { throw bad(name, "is not \(expected)", cause: error) }
        }
        switch try field("type") {
        case "header":
            let expected = "a non-empty JSON array of strings"
            guard let names = try json("feature_names", try field("feature_names"), expected: expected) as? [String], !names.isEmpty else {
                throw bad("feature_names", "is not \(expected)")
            }
            guard let count = Int(try field("n_samples")), count >= 0 else { throw bad("n_samples", "is not a non-negative integer") }
            var normalization: Normalization?
            if entry["normalization"] != nil {
                let text = try field("normalization")
                // Numbers parsed as written (Foundation's JSON reader rounds some doubles).
                let shape = "{\"min\":[…],\"max\":[…]} with one number per feature"
                guard try json("normalization", text, expected: shape) is [String: Any],
                      let minimum = numberArray(named: "min", in: text), let maximum = numberArray(named: "max", in: text),
                      minimum.count == names.count, maximum.count == names.count else {
                    throw bad("normalization", "is not \(shape)")
                }
                normalization = Normalization(minimum: minimum, maximum: maximum)
            }
            return .header(Header(featureNames: names, targetName: entry["target_name"].map { String(decoding: $0, as: UTF8.self) } ?? "target", sampleCount: count, normalization: normalization))
        case "sample":
            guard let task = Int(try field("task_id")), task >= 0 else { throw bad("task_id", "is not a non-negative integer") }
            guard let raw = entry["feature_values"] else { throw ExperimentError(.stream, "stream entry \(entry.id): field 'feature_values' is missing") }
            guard let values = parseNumberArray(bytes: raw) else { throw bad("feature_values", "is not a JSON array of numbers") }
            guard let target = Double(try field("target").trimmingCharacters(in: .whitespaces)), target.isFinite else { throw bad("target", "is not a finite number") }
            return .sample(Sample(taskID: task, featureValues: values, target: target))
        case let other:
            throw bad("type", "is '\(other.prefix(20))', expected 'header' or 'sample'")
        }
    }

    /// The array of numbers under `"name":` in a flat JSON object's text.
    static func numberArray(named name: String, in text: String) -> [Double]? {
        guard let key = text.range(of: "\"\(name)\""), let open = text[key.upperBound...].firstIndex(of: "["),
              text[key.upperBound..<open].allSatisfy({ $0 == ":" || $0 == " " }),
              let close = text[open...].firstIndex(of: "]") else { return nil }
        return parseNumberArray(String(text[open...close]))
    }

    /// A number as JSON writes it: Swift's shortest round-trip form (`0.25`, `1e-05`, `3.0`).
    static func number(_ value: Double) -> String { "\(value)" }

    static func jsonArray(_ items: [String]) -> String { "[" + items.joined(separator: ",") + "]" }

    /// `[0.1, 2, 3e-4]` (with or without spaces, as Python's json writes it) without a JSON
    /// parser and without intermediate strings: thousands of these arrive per second. Numbers
    /// are read by `strtod` (correctly rounded) and must be finite.
    static func parseNumberArray(_ text: String) -> [Double]? {
        parseNumberArray(bytes: Array(text.utf8))
    }

    static func parseNumberArray(bytes input: [UInt8]) -> [Double]? {
        var buffer = input
        buffer.append(0)
        return buffer.withUnsafeBufferPointer { p -> [Double]? in
            let count = p.count - 1
            let base = UnsafeRawPointer(p.baseAddress!).assumingMemoryBound(to: CChar.self)
            var i = 0
            func skipSpaces() { while i < count, p[i] == 32 || p[i] == 9 || p[i] == 10 || p[i] == 13 { i += 1 } }
            skipSpaces()
            guard i < count, p[i] == UInt8(ascii: "[") else { return nil }
            i += 1
            skipSpaces()
            var values: [Double] = []
            if i < count, p[i] == UInt8(ascii: "]") {
                i += 1
            } else {
                values.reserveCapacity(16)
                while true {
                    skipSpaces()
                    guard i < count, p[i] == UInt8(ascii: "-") || (p[i] >= 48 && p[i] <= 57) else { return nil }
                    var end: UnsafeMutablePointer<CChar>?
                    let value = strtod(base + i, &end)
                    guard let end, end > UnsafeMutablePointer(mutating: base + i), value.isFinite else { return nil }
                    i += UnsafePointer(end) - (base + i)
                    values.append(value)
                    skipSpaces()
                    guard i < count else { return nil }
                    if p[i] == UInt8(ascii: ",") { i += 1; continue }
                    if p[i] == UInt8(ascii: "]") { i += 1; break }
                    return nil
                }
            }
            skipSpaces()
            return i == count ? values : nil
        }
    }
}

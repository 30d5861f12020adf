import Foundation
public import Regression

/// A CSV file read per RFC 4180: a header row, then records of comma-separated fields; fields
/// may be quoted (`"…"`, with `""` for a quote) and then hold commas and line breaks; records end
/// with CRLF or LF. Every field remembers the line it starts on, for error messages.
///
/// Fields are kept as ranges into one buffer of their (unquoted) bytes: a data set of 20,000 ×
/// 11 numbers makes no string per cell.
public struct CSVTable: Sendable {
    /// One field: where its bytes are and the 1-based line it starts on.
    public struct Field: Sendable {
        public var range: Range<Int>
        public var line: Int
    }

    public var path: String
    /// Every field's bytes, back to back.
    public let storage: [UInt8]
    public var header: [Field]
    /// The data records (header excluded), blank lines skipped.
    public var records: [[Field]]

    /// The text of a field.
    public func text(_ field: Field) -> String { String(decoding: storage[field.range], as: UTF8.self) }

    /// Parses `bytes` (the file's content); `path` names the file in errors.
    public init(path: String, bytes: [UInt8]) throws(ExperimentError) {
        self.path = path
        var content = bytes
        if content.starts(with: [0xEF, 0xBB, 0xBF]) { content.removeFirst(3) } // UTF-8 BOM
        if String(validating: content, as: UTF8.self) == nil {
            // Name the line of the first invalid sequence.
            var iterator = content.makeIterator()
            var parser = Unicode.UTF8.ForwardParser()
            var offset = 0
            scan: while true {
                switch parser.parseScalar(from: &iterator) {
                case .valid(let scalar): offset += scalar.count
                case .error, .emptyInput: break scan
                }
            }
            let line = content[..<offset].reduce(1) { $1 == 10 ? $0 + 1 : $0 }
            throw ExperimentError(.csv, "\(path):\(line): the file is not valid UTF-8")
        }
        var storage: [UInt8] = []
        storage.reserveCapacity(content.count)
        var records: [[Field]] = []
        var record: [Field] = []
        var fieldStart = 0
        var fieldLine = 1
        var line = 1
        var i = 0
        var quoted = false
        var atFieldStart = true
        func endField() {
            record.append(Field(range: fieldStart..<storage.count, line: fieldLine))
            fieldStart = storage.count
        }
        func endRecord() {
            endField()
            // A line with nothing on it is no record (trailing newlines, blank separators).
            if !(record.count == 1 && record[0].range.isEmpty) { records.append(record) }
            record = []
            record.reserveCapacity(16)
        }
        while i < content.count {
            let b = content[i]
            if quoted {
                if b == UInt8(ascii: "\"") {
                    if i + 1 < content.count, content[i + 1] == UInt8(ascii: "\"") {
                        storage.append(b)
                        i += 2
                        continue
                    }
                    quoted = false
                    i += 1
                    if i < content.count, content[i] != UInt8(ascii: ","), content[i] != 10, content[i] != 13 {
                        throw ExperimentError(.csv, "\(path):\(line): a quoted field must end at a comma or the end of the line, found '\(Character(Unicode.Scalar(content[i])))'")
                    }
                    continue
                }
                if b == 10 { line += 1 }
                storage.append(b)
                i += 1
                continue
            }
            switch b {
            case UInt8(ascii: "\""):
                guard atFieldStart else { throw ExperimentError(.csv, "\(path):\(line): a quote inside an unquoted field (quote the whole field and double the quote)") }
                quoted = true
                atFieldStart = false
                i += 1
            case UInt8(ascii: ","):
                endField()
                fieldLine = line
                atFieldStart = true
                i += 1
            case 13, 10:
                endRecord()
                i += (b == 13 && i + 1 < content.count && content[i + 1] == 10) ? 2 : 1
                line += 1
                fieldLine = line
                atFieldStart = true
            default:
                storage.append(b)
                atFieldStart = false
                i += 1
            }
        }
        if quoted { throw ExperimentError(.csv, "\(path):\(fieldLine): a quoted field is never closed") }
        if fieldStart < storage.count || !record.isEmpty { endRecord() }
        self.storage = storage
        guard let first = records.first else {
            throw ExperimentError(.csv, "\(path): the file is empty (expected a header row and data rows)")
        }
        header = first
        self.records = Array(records.dropFirst())
    }

    /// The field as a number: `strtod` on its bytes (spaces around allowed); nil when it is not
    /// one whole number. NaN and infinity parse (callers refuse them).
    public func number(_ field: Field) -> Double? {
        var lower = field.range.lowerBound, upper = field.range.upperBound
        while lower < upper, storage[lower] == 32 || storage[lower] == 9 { lower += 1 }
        while upper > lower, storage[upper - 1] == 32 || storage[upper - 1] == 9 { upper -= 1 }
        guard upper > lower, upper - lower <= 64, !storage[lower..<upper].contains(where: { $0 == UInt8(ascii: "x") || $0 == UInt8(ascii: "X") }) else { return nil }
        let count = upper - lower
        return withUnsafeTemporaryAllocation(of: CChar.self, capacity: count + 1) { buffer -> Double? in
            for k in 0..<count { buffer[k] = CChar(bitPattern: storage[lower + k]) }
            buffer[count] = 0
            let start = buffer.baseAddress!
            var end: UnsafeMutablePointer<CChar>?
            let value = strtod(start, &end)
            guard let end, end - start == count else { return nil }
            return value
        }
    }
}

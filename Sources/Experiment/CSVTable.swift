/// A CSV file read per RFC 4180: a header row, then records of comma-separated fields; fields
/// may be quoted (`"…"`, with `""` for a quote) and then hold commas and line breaks; records end
/// with CRLF or LF. Every field remembers the line it starts on, for error messages.
public struct CSVTable: Sendable {
    /// One field and the 1-based line it starts on.
    public struct Field: Sendable {
        public var text: String
        public var line: Int
    }

    public var path: String
    public var header: [Field]
    /// The data records (header excluded), blank lines skipped.
    public var records: [[Field]]

    /// Parses `bytes` (the file's content); `path` names the file in errors.
    public init(path: String, bytes: [UInt8]) throws(ExperimentError) {
        self.path = path
        var records: [[Field]] = []
        var record: [Field] = []
        var field: [UInt8] = []
        var fieldLine = 1
        var line = 1
        var i = 0
        var quoted = false
        var atFieldStart = true
        var content = bytes
        if content.starts(with: [0xEF, 0xBB, 0xBF]) { content.removeFirst(3) } // UTF-8 BOM
        func text(_ bytes: [UInt8]) throws(ExperimentError) -> String {
            guard let string = String(validating: bytes, as: UTF8.self) else {
                throw ExperimentError(.csv, "\(path):\(fieldLine): the field is not valid UTF-8")
            }
            return string
        }
        func endRecord() throws(ExperimentError) {
            record.append(Field(text: try text(field), line: fieldLine))
            field = []
            // A line with nothing on it is no record (trailing newlines, blank separators).
            if !(record.count == 1 && record[0].text.isEmpty) { records.append(record) }
            record = []
        }
        while i < content.count {
            let b = content[i]
            if quoted {
                if b == UInt8(ascii: "\"") {
                    if i + 1 < content.count, content[i + 1] == UInt8(ascii: "\"") {
                        field.append(b)
                        i += 2
                        continue
                    }
                    quoted = false
                    i += 1
                    if i < content.count, ![UInt8(ascii: ","), 10, 13].contains(content[i]) {
                        throw ExperimentError(.csv, "\(path):\(line): a quoted field must end at a comma or the end of the line, found '\(Character(Unicode.Scalar(content[i])))'")
                    }
                    continue
                }
                if b == 10 { line += 1 }
                field.append(b)
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
                record.append(Field(text: try text(field), line: fieldLine))
                field = []
                fieldLine = line
                atFieldStart = true
                i += 1
            case 13, 10:
                try endRecord()
                i += (b == 13 && i + 1 < content.count && content[i + 1] == 10) ? 2 : 1
                line += 1
                fieldLine = line
                atFieldStart = true
            default:
                field.append(b)
                atFieldStart = false
                i += 1
            }
        }
        if quoted { throw ExperimentError(.csv, "\(path):\(fieldLine): a quoted field is never closed") }
        if !field.isEmpty || !record.isEmpty { try endRecord() }
        guard let first = records.first else {
            throw ExperimentError(.csv, "\(path): the file is empty (expected a header row and data rows)")
        }
        header = first
        self.records = Array(records.dropFirst())
    }
}

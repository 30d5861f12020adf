import Foundation
import Testing
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool

/// Bad CSVs are refused with file, line and column; good ones parse per RFC 4180.
@Suite struct CSVTests {
    static let badCases: [(name: String, text: String, fragments: [String])] = [
        ("empty file", "", ["data.csv", "empty"]),
        ("only blank lines", "\n\n", ["data.csv", "empty"]),
        ("no header", "1,2,3\n4,5,6\n", ["data.csv:1", "no header row"]),
        ("header but no data", "a,b,target\n", ["data.csv", "no data rows"]),
        ("missing target column", "a,b,y\n1,2,3\n", ["data.csv:1", "no column named 'target'", "a, b, y"]),
        ("non-numeric cell", "a,b,target\n1,2,3\n4,x5,6\n", ["data.csv:3:2", "column 'b'", "'x5' is not a number"]),
        ("empty cell", "a,b,target\n1,,3\n", ["data.csv:2:2", "column 'b'", "empty cell"]),
        ("ragged row", "a,b,target\n1,2,3\n1,2\n", ["data.csv:3", "2 fields, but the header has 3"]),
        ("duplicate column names", "a,b,a,target\n1,2,3,4\n", ["data.csv:1:3", "'a' appears twice (columns 1 and 3)"]),
        ("NaN", "a,b,target\n1,nan,3\n", ["data.csv:2:2", "column 'b'", "not a finite number"]),
        ("infinity", "a,b,target\n1,2,-inf\n", ["data.csv:2:3", "column 'target'", "not a finite number"]),
        ("unclosed quote", "a,b,target\n1,\"2,3\n", ["data.csv:2", "never closed"]),
        ("empty column name", "a,,target\n1,2,3\n", ["data.csv:1:2", "empty column name"]),
    ]

    @Test(arguments: badCases.map(\.name))
    func aBadCSVIsRefusedNamingFileLineAndColumn(_ name: String) {
        let bad = Self.badCases.first { $0.name == name }!
        let path = Fixtures.temporaryCSV(bad.text)
        do {
            _ = try Dataset.load(csv: path, target: "target")
            Issue.record("\(name): accepted")
        } catch {
            #expect(error.kind == .csv, "\(name)")
            for fragment in bad.fragments { #expect(error.message.contains(fragment), "\(name): \(error.message)") }
        }
    }

    @Test func invalidUTF8NamesItsLine() {
        do {
            _ = try CSVTable(path: "bytes.csv", bytes: Array("a,b,target\n1,2,3\n4,".utf8) + [0xC3, 0x28] + Array(",6\n".utf8))
            Issue.record("accepted invalid UTF-8")
        } catch {
            #expect(error.message.contains("bytes.csv:3") && error.message.contains("not valid UTF-8"), "\(error.message)")
        }
    }

    @Test func quotedFieldsCRLFAndBOMFollowRFC4180() throws {
        let text = "\u{FEFF}\"a\",\"b, with comma\",target\r\n\"1.5\",\"2\",\"3\"\r\n4,5e-1,6\r\n"
        let data = try Dataset.load(csv: Fixtures.temporaryCSV(text), target: "target")
        #expect(data.featureNames == ["a", "b, with comma"])
        #expect(data.features == [1.5, 2, 4, 0.5])
        #expect(data.targets == [3, 6])
        #expect(data.targetTexts == ["3", "6"])
        let multiline = try CSVTable(path: "m.csv", bytes: Array("name,target\n\"two\nlines\",1\nx,2\n".utf8))
        #expect(multiline.records.count == 2)
        #expect(multiline.records[1][0].line == 4, "a field remembers the line it starts on")
    }

    @Test func normalisationIsMinMaxAndAConstantColumnBecomesZero() throws {
        let data = try Dataset.load(csv: Fixtures.temporaryCSV("a,k,target\n2,7,1\n4,7,2\n6,7,3\n"), target: "target")
        let normalization = data.normalization()
        #expect(normalization.minimum == [2, 7] && normalization.maximum == [6, 7])
        #expect(normalization.apply(data.features) == [0, 0, 0.5, 0, 1, 0])
    }
}

import Foundation

/// The committed data sets and scikit-learn reference values (Fixtures/README.md).
enum Fixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    static var reference: [String: Any] {
        let data = FileManager.default.contents(atPath: path("reference.json")) ?? Data()
        return (try? JSONSerialization.jsonObject(with: data) as? [String: Any]) ?? [:] // try?: a missing fixture fails the test that reads it
    }

    static func section(_ name: String) -> [String: Any] { reference[name] as? [String: Any] ?? [:] }
    static func numbers(_ value: Any?) -> [Double] { (value as? [NSNumber])?.map(\.doubleValue) ?? [] }
    static func number(_ value: Any?) -> Double { (value as? NSNumber)?.doubleValue ?? .nan }

    /// Writes `text` to a new temporary file named `name` and returns its path.
    static func temporaryCSV(_ text: String, name: String = "data.csv") -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("exp-\(UUID().uuidString.prefix(8))")
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) // try?: createFile below then fails visibly
        let file = directory.appendingPathComponent(name)
        _ = FileManager.default.createFile(atPath: file.path, contents: Data(text.utf8))
        return file.path
    }
}

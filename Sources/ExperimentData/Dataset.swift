import Foundation
public import Regression

/// A numeric data set: feature columns and a target column, from a CSV with a header row.
public struct Dataset: Sendable {
    /// The file name without directories (recorded in results).
    public var name: String
    public var featureNames: [String]
    public var targetName: String
    /// Row-major: row `r`, feature `f` at `r * featureCount + f`.
    public var features: [Double]
    public var targets: [Double]
    /// The targets exactly as written in the CSV (the stream carries them as written).
    public var targetTexts: [String]

    public var rowCount: Int { targets.count }
    public var featureCount: Int { featureNames.count }

    public init(name: String, featureNames: [String], targetName: String, features: [Double], targets: [Double], targetTexts: [String]) {
        self.name = name
        self.featureNames = featureNames
        self.targetName = targetName
        self.features = features
        self.targets = targets
        self.targetTexts = targetTexts
    }

    /// Reads and checks a CSV file; every error names the file, the line and the column.
    public static func load(csv path: String, target: String) throws(ExperimentError) -> Dataset {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
            throw ExperimentError(.csv, "\(path): cannot read the file (missing, or not readable)", cause: error)
        }
        return try parse(CSVTable(path: path, bytes: Array(data)), target: target)
    }

    /// Checks a parsed table: unique, non-empty column names; the target column present; every
    /// row as long as the header; every cell a finite number.
    public static func parse(_ table: CSVTable, target: String) throws(ExperimentError) -> Dataset {
        let path = table.path
        let names = table.header.map { table.text($0).trimmingCharacters(in: .whitespaces) }
        var seen: [String: Int] = [:]
        for (column, name) in names.enumerated() {
            guard !name.isEmpty else { throw ExperimentError(.csv, "\(path):\(table.header[column].line):\(column + 1): the header has an empty column name") }
            if let earlier = seen[name] {
                throw ExperimentError(.csv, "\(path):\(table.header[column].line):\(column + 1): column name '\(name)' appears twice (columns \(earlier + 1) and \(column + 1))")
            }
            seen[name] = column
        }
        if names.allSatisfy({ number($0) != nil }) {
            throw ExperimentError(.csv, "\(path):\(table.header[0].line): no header row: the first row holds only numbers (\(names.prefix(4).joined(separator: ","))…); add a row naming the columns")
        }
        guard let targetColumn = seen[target] else {
            let shown = names.prefix(20).joined(separator: ", ") + (names.count > 20 ? ", … (\(names.count) in all)" : "")
            throw ExperimentError(.csv, "\(path):\(table.header[0].line): no column named '\(target)' (columns: \(shown)); choose one with --target")
        }
        guard names.count >= 2 else { throw ExperimentError(.csv, "\(path):\(table.header[0].line): only the target column; at least one feature column is needed") }
        guard !table.records.isEmpty else { throw ExperimentError(.csv, "\(path): a header but no data rows") }
        for record in table.records where record.count != names.count {
            throw ExperimentError(.csv, "\(path):\(record[0].line): \(record.count) fields, but the header has \(names.count)")
        }
        let featureColumns = names.indices.filter { $0 != targetColumn }
        var features: [Double] = []
        features.reserveCapacity(table.records.count * featureColumns.count)
        var targets: [Double] = []
        var targetTexts: [String] = []
        targets.reserveCapacity(table.records.count)
        targetTexts.reserveCapacity(table.records.count)
        for record in table.records {
            guard record.count == names.count else {
                throw ExperimentError(.csv, "\(path):\(record[0].line): \(record.count) fields, but the header has \(names.count)")
            }
            func value(_ column: Int) throws(ExperimentError) -> Double {
                let field = record[column]
                if let parsed = table.number(field), parsed.isFinite { return parsed }
                // The slow path only for the error message.
                let text = table.text(field).trimmingCharacters(in: .whitespaces)
                let place = "\(path):\(field.line):\(column + 1) (column '\(names[column])')"
                guard !text.isEmpty else { throw ExperimentError(.csv, "\(place): empty cell") }
                guard table.number(field) != nil else { throw ExperimentError(.csv, "\(place): '\(text.prefix(40))' is not a number") }
                throw ExperimentError(.csv, "\(place): '\(text.prefix(40))' is not a finite number (NaN and infinity are refused)")
            }
            for column in featureColumns { features.append(try value(column)) }
            targets.append(try value(targetColumn))
            targetTexts.append(table.text(record[targetColumn]).trimmingCharacters(in: .whitespaces))
        }
        return Dataset(name: URL(fileURLWithPath: path).lastPathComponent, featureNames: featureColumns.map { names[$0] }, targetName: names[targetColumn],
                       features: features, targets: targets, targetTexts: targetTexts)
    }

    /// A decimal number as CSV files write them (`12`, `-0.5`, `1e-3`, `nan`, `inf`…).
    static func number(_ text: String) -> Double? {
        guard !text.isEmpty, text.utf8.count <= 64, !text.contains(where: { $0 == "x" || $0 == "X" }) else { return nil }
        return Double(text)
    }

    /// The per-feature minimum and maximum over every row.
    public func normalization() -> Normalization {
        var minimum = [Double](repeating: .infinity, count: featureCount)
        var maximum = [Double](repeating: -.infinity, count: featureCount)
        for r in 0..<rowCount {
            for f in 0..<featureCount {
                let v = features[r * featureCount + f]
                if v < minimum[f] { minimum[f] = v }
                if v > maximum[f] { maximum[f] = v }
            }
        }
        return Normalization(minimum: minimum, maximum: maximum)
    }
}

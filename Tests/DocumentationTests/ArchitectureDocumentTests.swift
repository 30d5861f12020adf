import Foundation
import Testing

/// `docs/architecture.md` is drawn from `Package.swift`: every module has its row in the module
/// table, naming what it is for and every module it depends on; every test target is named.
/// A target added, removed or rewired without the document fails here.
@Suite struct ArchitectureDocumentTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized

    struct Target: Equatable {
        var kind: String
        var name: String
        var dependencies: [String]
    }

    /// The targets of the manifest: kind, name and the targets (not products) they depend on.
    static func targets() throws -> [Target] {
        let text = try String(contentsOf: root.appendingPathComponent("Package.swift"), encoding: .utf8)
        let scalars = Array(text.unicodeScalars)
        let opening = try Regex(#"\.(target|systemLibrary|executableTarget|testTarget)\("#)
        var found: [Target] = []
        for match in text.matches(of: opening) {
            // The call's whole text, up to its closing parenthesis.
            let start = text.unicodeScalars.distance(from: text.unicodeScalars.startIndex, to: match.range.upperBound.samePosition(in: text.unicodeScalars) ?? text.unicodeScalars.endIndex)
            var depth = 1, end = start
            while end < scalars.count, depth > 0 {
                if scalars[end] == "(" { depth += 1 } else if scalars[end] == ")" { depth -= 1 }
                end += 1
            }
            var call = String(String.UnicodeScalarView(scalars[start..<end]))
            // Products of other packages are not modules of ours.
            call = call.replacing(try Regex(#"\.product\([^)]*\)"#), with: "")
            guard let name = call.firstMatch(of: try Regex(#"name:\s*"([^"]+)""#))?.output[1].substring.map(String.init) else { continue }
            var dependencies: [String] = []
            if let list = call.firstMatch(of: try Regex(#"dependencies:\s*\[([^\]]*)\]"#))?.output[1].substring {
                dependencies = list.matches(of: try Regex(#""([^"]+)""#)).compactMap { $0.output[1].substring.map(String.init) }
            }
            found.append(Target(kind: String(match.output[1].substring ?? ""), name: name, dependencies: dependencies))
        }
        return found
    }

    /// The module table's rows: first cell's module names, the whole row's text.
    static func rows() throws -> [(modules: [String], purpose: String, imports: String)] {
        let document = try String(contentsOf: root.appendingPathComponent("docs/architecture.md"), encoding: .utf8)
        var rows: [(modules: [String], purpose: String, imports: String)] = []
        for line in document.split(separator: "\n") where line.hasPrefix("| `") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count >= 5 else { continue }
            let modules = cells[1].matches(of: try Regex(#"`([^`]+)`"#)).compactMap { $0.output[1].substring.map(String.init) }
            rows.append((modules, cells[2], cells[3]))
        }
        return rows
    }

    @Test func theManifestIsRead() throws {
        let targets = try Self.targets()
        #expect(targets.contains { $0.name == "RedisClient" && $0.dependencies.contains("CHiredis") }, "\(targets)")
        #expect(targets.filter { $0.kind == "testTarget" }.count >= 5)
    }

    @Test func everyModuleHasItsRowWithWhatItIsForAndEveryDependency() throws {
        let rows = try Self.rows()
        for target in try Self.targets() where target.kind != "testTarget" {
            let row = rows.first { $0.modules.contains(target.name) }
            guard let row else {
                Issue.record("docs/architecture.md has no row for the module `\(target.name)` (\(target.kind) in Package.swift)")
                continue
            }
            #expect(!row.purpose.isEmpty, "`\(target.name)`: say what it is for")
            for dependency in target.dependencies {
                #expect(row.imports.contains("`\(dependency)`"), "the row of `\(target.name)` does not name its dependency `\(dependency)`")
            }
        }
    }

    /// The other way round: a row names no dependency the module does not have (the drift of
    /// a module credited with another's work).
    @Test func everyNamedDependencyIsReal() throws {
        let targets = Dictionary(try Self.targets().map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        for row in try Self.rows() where row.modules.count == 1 {
            guard let target = targets[row.modules[0]] else { continue }
            let named = row.imports.matches(of: try Regex(#"`([^`]+)`"#)).compactMap { $0.output[1].substring.map(String.init) }
            for name in named where !target.dependencies.contains(name) {
                Issue.record("docs/architecture.md says `\(target.name)` depends on `\(name)`; Package.swift does not")
            }
        }
    }

    @Test func everyRowIsAModuleOfThePackage() throws {
        let names = Set(try Self.targets().map(\.name))
        for row in try Self.rows() {
            for module in row.modules {
                #expect(names.contains(module), "docs/architecture.md describes `\(module)`, which Package.swift does not have")
            }
        }
    }

    @Test func everyTestTargetIsNamed() throws {
        let document = try String(contentsOf: Self.root.appendingPathComponent("docs/architecture.md"), encoding: .utf8)
        for target in try Self.targets() where target.kind == "testTarget" {
            #expect(document.contains("`\(target.name)`"), "docs/architecture.md does not name the test target `\(target.name)`")
        }
    }
}

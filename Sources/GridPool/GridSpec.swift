public import Regression
import TrafficModel

/// A grid search's hyper-parameter grid, read from a JSON file (docs/experiment.md):
///
/// ```json
/// {
///   "rf":  {"n_estimators": [50, 100], "max_depth": [null, 8]},
///   "svr": {"C": [0.5, 1, 2]},
///   "lr":  {}
/// }
/// ```
///
/// Each algorithm's parameter sets are the Cartesian product of its lists (a single value counts
/// as a list of one; `null` is "none"; `{}` is the defaults alone). Every set is checked by the
/// algorithm itself, so a bad grid is refused — naming the line and the reason — before any job
/// exists.
public struct GridSpec: Sendable, Equatable {
    /// One algorithm's parameter sets, in the file's order.
    public struct Entry: Sendable, Equatable {
        public var algorithm: String
        public var parameterSets: [[String: String]]
    }

    public var entries: [Entry]
    /// Upper bound of parameter sets in one grid (times folds, the tasks of a job).
    public static let maximumParameterSets = 10_000

    public var parameterSetCount: Int { entries.reduce(0) { $0 + $1.parameterSets.count } }

    /// Parses and checks a grid file's content; `path` names it in errors.
    public static func parse(_ bytes: [UInt8], path: String) throws(ExperimentError) -> GridSpec {
        func line(_ offset: Int) -> Int { bytes[..<min(offset, bytes.count)].reduce(1) { $1 == 10 ? $0 + 1 : $0 } }
        let top: [JSONMember]
        do {
            top = try bytes.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in try JSONScanner.objectMembers(buffer) }
        } catch {
            throw .rewording(error, as: .parameter, "\(path):\(line(error.offset)): not a JSON object of algorithms: \(error.reason)")
        }
        guard !top.isEmpty else { throw ExperimentError(.parameter, "\(path):1: the grid names no algorithm") }
        var entries: [Entry] = []
        var total = 0
        for member in top {
            let at = "\(path):\(line(member.keyRange.lowerBound))"
            let algorithm: any Regressor.Type
            do { algorithm = try Regressors.named(member.key) } catch { throw .rewording(error, as: .parameter, "\(at): \(error.message)") }
            guard !entries.contains(where: { $0.algorithm == member.key }) else { throw ExperimentError(.parameter, "\(at): algorithm '\(member.key)' appears twice") }
            guard member.kind == .object else { throw ExperimentError(.parameter, "\(at): '\(member.key)' must map parameter names to lists of values") }
            let parameters = bytes.withUnsafeBufferPointer { JSONScanner.objectMembers($0, in: member.valueRange) }
            var axes: [(name: String, values: [String])] = []
            for parameter in parameters {
                let where_ = "\(path):\(line(parameter.keyRange.lowerBound))"
                guard !axes.contains(where: { $0.name == parameter.key }) else { throw ExperimentError(.parameter, "\(where_): parameter '\(parameter.key)' appears twice") }
                let elements: [(range: Range<Int>, kind: JSONValueKind)] = parameter.kind == .array
                    ? bytes.withUnsafeBufferPointer { JSONScanner.arrayElements($0, in: parameter.valueRange) }
                    : [(parameter.valueRange, parameter.kind)]
                guard !elements.isEmpty else { throw ExperimentError(.parameter, "\(where_): '\(member.key).\(parameter.key)' has no values") }
                var values: [String] = []
                for element in elements {
                    let value: String
                    switch element.kind {
                    case .number, .bool: value = String(decoding: bytes[element.range], as: UTF8.self)
                    case .null: value = "none"
                    case .string: value = bytes.withUnsafeBufferPointer { JSONScanner.decodeString($0, element.range) }
                    case .object, .array: throw ExperimentError(.parameter, "\(path):\(line(element.range.lowerBound)): '\(member.key).\(parameter.key)' values must be numbers, strings, booleans or null")
                    }
                    // Each value on its own first (parameters are independent), so an unknown
                    // name or a bad value is reported on its own line.
                    do { _ = try algorithm.init(parameters: [parameter.key: value]) } catch {
                        // ("--param" is the command line's word; a grid file has no such flag.)
                        throw .rewording(error, as: .parameter, "\(path):\(line(element.range.lowerBound)): \(error.message.replacing("--param ", with: ""))")
                    }
                    values.append(value)
                }
                axes.append((parameter.key, values))
            }
            let count = axes.reduce(1) { $0 * $1.values.count }
            total += count
            guard total <= maximumParameterSets else {
                throw ExperimentError(.parameter, "\(at): the grid has over \(maximumParameterSets) parameter sets; split it into several jobs")
            }
            var sets: [[String: String]] = [[:]]
            for axis in axes {
                sets = sets.flatMap { set in axis.values.map { value in set.merging([axis.name: value]) { $1 } } }
            }
            for set in sets {
                do { _ = try algorithm.init(parameters: set) } catch { throw .rewording(error, as: .parameter, "\(at): \(error.message)") }
            }
            entries.append(Entry(algorithm: member.key, parameterSets: sets))
        }
        return GridSpec(entries: entries)
    }
}

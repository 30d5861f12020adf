import Foundation
public import Regression

/// The pool's JSON: sorted keys, so the same value is the same bytes (task records, results,
/// events, registry entries). Numbers must be finite (`ModelEvaluation` refuses others).
public enum PoolJSON {
    /// `value` as JSON bytes; `what` names it in the error.
    public static func encode<T: Encodable>(_ value: T, _ what: @autoclosure () -> String) throws(ExperimentError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        do { return Array(try encoder.encode(value)) } catch { throw ExperimentError(.training, "encoding \(what()) as JSON", cause: error) }
    }

    /// `value` decoded from `bytes`; `what` names it (key, field) in the error.
    public static func decode<T: Decodable>(_ type: T.Type, from bytes: [UInt8], _ what: @autoclosure () -> String) throws(ExperimentError) -> T {
        do { return try JSONDecoder().decode(type, from: Data(bytes)) } catch { throw ExperimentError(.stream, "\(what()) is not a \(T.self)", cause: error) }
    }
}

/// Reading JSON from outside (client frames, token claims, stored results) so that one member
/// of the wrong type is told apart from one that is absent, and never fails its container: the
/// caller names the member at fault instead of refusing the whole.

/// A value that may fail to decode without failing its container; the failure is kept.
struct Lenient<Value: Decodable>: Decodable {
    let decoded: Result<Value, any Error>

    /// The value, nil when it did not decode as `Value`.
    var value: Value? {
        if case .success(let value) = decoded { value } else { nil }
    }

    init(from decoder: any Decoder) throws {
        do {
            decoded = .success(try Value(from: decoder))
        } catch {
            decoded = .failure(error)
        }
    }
}

/// One member of a JSON object, as found.
enum FieldValue<Value> {
    /// The member is not there.
    case absent
    /// The member is `null`.
    case null
    case value(Value)
    /// The member holds something that is not a `Value`; the decoder's error is kept.
    case malformed(any Error)

    /// The value when the member holds one.
    var value: Value? {
        if case .value(let value) = self { value } else { nil }
    }
}

extension KeyedDecodingContainer {
    /// Reads the member `key` as `Value`, telling absent, null, a value and a wrong type apart.
    func field<Value: Decodable>(_ key: Key, as type: Value.Type) -> FieldValue<Value> {
        guard contains(key) else { return .absent }
        do {
            if try decodeNil(forKey: key) { return .null }
            return .value(try decode(type, forKey: key))
        } catch {
            return .malformed(error)
        }
    }
}

extension SingleValueDecodingContainer {
    /// The value as `Value`, or nil when it is of another JSON type (or out of `Value`'s range).
    func probe<Value: Decodable>(_ type: Value.Type) -> Value? {
        try? decode(type) // try?: asking which of several types a value has; "not this one" is the answer
    }
}

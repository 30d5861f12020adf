/// The arguments of one command, packed into one contiguous byte buffer.
///
/// A pipeline of thousands of commands then costs two allocations per command instead of one
/// per argument, and hiredis receives pointers straight into this storage.
public struct RedisArguments: Sendable, Hashable {
    /// All argument bytes, back to back.
    public private(set) var storage: [UInt8] = []
    /// The length of each argument in `storage`.
    public private(set) var lengths: [Int] = []

    public init() {}

    /// Creates empty arguments with room for `bytes` bytes in `arguments` arguments.
    public init(reservingBytes bytes: Int, arguments: Int) {
        storage.reserveCapacity(bytes)
        lengths.reserveCapacity(arguments)
    }

    /// Creates the arguments from text parts, e.g. `["PING"]`.
    public init(_ parts: [String]) {
        for part in parts { append(part) }
    }

    public var count: Int { lengths.count }

    /// The command name (first argument), for error messages.
    public var name: String {
        guard let first = lengths.first else { return "" }
        return String(decoding: storage[0..<first], as: UTF8.self).uppercased()
    }

    public mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { append(bytes: $0) }
    }

    public mutating func append(_ value: Int) {
        append(String(value))
    }

    public mutating func append<Bytes: Collection>(_ bytes: Bytes) where Bytes.Element == UInt8 {
        storage.append(contentsOf: bytes)
        lengths.append(bytes.count)
    }

    public mutating func append(bytes: UnsafeBufferPointer<UInt8>) {
        storage.append(contentsOf: bytes)
        lengths.append(bytes.count)
    }

    /// Each argument as its own byte array (for logs and tests).
    public var parts: [[UInt8]] {
        var result: [[UInt8]] = []
        var offset = 0
        for length in lengths {
            result.append(Array(storage[offset..<offset + length]))
            offset += length
        }
        return result
    }
}

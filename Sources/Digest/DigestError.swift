import COpenSSL

/// libcrypto could not compute a digest or MAC. It fails only when it cannot allocate its
/// context, so the process is short of memory: nothing about the input is wrong, and the same
/// call may succeed later.
public struct DigestError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Operation: String, Sendable {
        case sha256 = "SHA-256"
        case hmacSHA256 = "HMAC-SHA256"
    }

    public var operation: Operation
    /// OpenSSL's error code (`ERR_get_error`); 0 when it queued none.
    public var code: UInt
    /// OpenSSL's text for `code` (empty when it queued none).
    public var reason: String

    public init(operation: Operation, code: UInt, reason: String) {
        self.operation = operation
        self.code = code
        self.reason = reason
    }

    /// The error OpenSSL queued on this thread for the failed `operation` (taken off the queue).
    static func taken(after operation: Operation) -> DigestError {
        var text = [CChar](repeating: 0, count: 256)
        let code = traffic_crypto_take_error(&text, text.count)
        let reason = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return DigestError(operation: operation, code: UInt(code), reason: reason)
    }

    public var description: String {
        let cause = code == 0 ? "no OpenSSL error queued" : "OpenSSL error \(code): \(reason)"
        return "OpenSSL \(operation.rawValue) failed (\(cause)); libcrypto fails only when it cannot allocate memory: retry once the process has memory to spare"
    }
}

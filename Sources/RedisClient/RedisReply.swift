import CHiredis

/// One reply from Redis, copied out of hiredis memory.
///
/// Bulk strings stay raw bytes (`[UInt8]`) because the product moves JSON through Redis and
/// should not pay for a UTF-8 round trip it does not need.
public enum RedisReply: Sendable, Hashable {
    /// A bulk string.
    case bulk([UInt8])
    /// A simple status reply such as `OK` or `PONG`.
    case status(String)
    /// An integer reply.
    case integer(Int64)
    /// An array reply (also used for pub/sub messages and stream entries).
    case array([RedisReply])
    /// The null bulk string or null array.
    case null
    /// An error reply sent by the server, e.g. `WRONGTYPE …` or `NOSCRIPT …`.
    case error(String)

    /// The reply as text, for bulk strings and status replies.
    public var string: String? {
        switch self {
        case .bulk(let bytes): return String(decoding: bytes, as: UTF8.self)
        case .status(let text): return text
        default: return nil
        }
    }

    /// The raw bytes of a bulk string or status reply.
    public var bytes: [UInt8]? {
        switch self {
        case .bulk(let bytes): return bytes
        case .status(let text): return Array(text.utf8)
        default: return nil
        }
    }

    /// Copies a hiredis reply tree into Swift values. The caller still frees `reply`.
    init(copying reply: UnsafePointer<redisReply>) {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING:
            if let str = r.str, r.len > 0 {
                self = .bulk(str.withMemoryRebound(to: UInt8.self, capacity: Int(r.len)) {
                    Array(UnsafeBufferPointer(start: $0, count: Int(r.len)))
                })
            } else {
                self = .bulk([])
            }
        case REDIS_REPLY_STATUS:
            self = .status(r.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_ERROR:
            self = .error(r.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_INTEGER:
            self = .integer(Int64(r.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            items.reserveCapacity(Int(r.elements))
            if let elements = r.element {
                for index in 0..<Int(r.elements) {
                    if let element = elements[index] {
                        items.append(RedisReply(copying: element))
                    } else {
                        items.append(.null)
                    }
                }
            }
            self = .array(items)
        default:
            self = .null
        }
    }
}

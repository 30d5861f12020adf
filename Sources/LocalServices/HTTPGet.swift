import Durations
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A minimal HTTP/1.1 GET over a loopback socket, independent of the server under test.
public struct HTTPGetResult: Sendable {
    public var status: Int
    /// The status line as sent, e.g. `HTTP/1.1 429 Too Many Requests`.
    public var statusLine: String
    public var headers: [String: String]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// `timeout` bounds the wait for the answer: generous, since tests run beside every other suite
/// on two shared cores (a test checks what is answered, never how fast).
public func httpGet(port: Int, path: String, headers: [String: String] = [:], timeout: Duration = .seconds(15)) async throws -> HTTPGetResult {
    try await httpRequest(port: port, method: "GET", path: path, headers: headers, timeout: timeout)
}

/// The same for any method, with an optional body (sent with its Content-Length).
public func httpRequest(port: Int, method: String, path: String, headers: [String: String] = [:], body: [UInt8] = [], timeout: Duration = .seconds(15)) async throws -> HTTPGetResult {
    // The blocking socket calls run on a thread of their own: not on the cooperative pool, and
    // not on Dispatch's global queue either, which on Linux shares its width with that pool
    // (forty blocked requests there would starve the in-process server they are waiting on).
    try await withCheckedThrowingContinuation { continuation in
        Thread { continuation.resume(with: Result { try httpRequestBlocking(port: port, method: method, path: path, headers: headers, body: body, timeout: timeout) }) }.start()
    }
}

private func httpRequestBlocking(port: Int, method: String, path: String, headers: [String: String], body requestBody: [UInt8], timeout: Duration) throws -> HTTPGetResult {
    guard let fd = connectLoopback(port: port, receiveTimeoutSeconds: max(1, Int(clamping: timeout.wholeSeconds))) else {
        throw LocalServiceError("connect to 127.0.0.1:\(port) failed")
    }
    defer { close(fd) }
    var extra = headers.map { "\($0.key): \($0.value)\r\n" }.joined()
    if !requestBody.isEmpty || method == "POST" || method == "PUT" { extra += "Content-Length: \(requestBody.count)\r\n" }
    let request = Array("\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\(extra)\r\n".utf8) + requestBody
    guard write(fd, request, request.count) == request.count else { throw LocalServiceError("write failed") }
    var data: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    var headerEnd: Int?
    var contentLength: Int?
    while true {
        let n = read(fd, &buffer, buffer.count)
        if n <= 0 { break }
        data += buffer[0..<n]
        if headerEnd == nil, let range = findCRLFCRLF(data) {
            headerEnd = range
            let head = String(decoding: data[0..<range], as: UTF8.self)
            for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                contentLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces))
            }
        }
        if let headerEnd, let contentLength, data.count >= headerEnd + 4 + contentLength || method == "HEAD" { break }
    }
    guard let headerEnd else { throw LocalServiceError("no HTTP response from port \(port): \(String(decoding: data, as: UTF8.self))") }
    let head = String(decoding: data[0..<headerEnd], as: UTF8.self).split(separator: "\r\n")
    let statusParts = head.first?.split(separator: " ") ?? []
    var headers: [String: String] = [:]
    for line in head.dropFirst() {
        let parts = line.split(separator: ":", maxSplits: 1)
        if parts.count == 2 { headers[parts[0].lowercased()] = parts[1].trimmingCharacters(in: .whitespaces) }
    }
    let body = Array(data[(headerEnd + 4)...].prefix(contentLength ?? Int.max))
    return HTTPGetResult(status: statusParts.count > 1 ? Int(statusParts[1]) ?? 0 : 0, statusLine: String(head.first ?? ""), headers: headers, body: body)
}

private func findCRLFCRLF(_ data: [UInt8]) -> Int? {
    guard data.count >= 4 else { return nil }
    for i in 0...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 { return i }
    return nil
}

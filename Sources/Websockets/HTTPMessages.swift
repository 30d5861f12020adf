import TrafficModel

/// An HTTP request (or a WebSocket upgrade request) as the server's delegate sees it.
public struct HTTPRequest: Sendable {
    /// The path without the query string, e.g. `/api/cameras/7/latest`.
    public var path: String
    /// Query arguments (`?limit=5` → `["limit": "5"]`), URL-decoded by lws.
    public var query: [String: String]
    /// The request headers the services look at, lower-cased names: `authorization`, `origin`,
    /// `user-agent`, `x-forwarded-for` (only those present).
    public var headers: [String: String]
    /// The peer's address.
    public var peer: String
    /// `GET`, `HEAD`, `POST`… (upper case).
    public var method: String

    public init(path: String, method: String = "GET", query: [String: String] = [:], headers: [String: String] = [:], peer: String = "") {
        self.path = path
        self.method = method
        self.query = query
        self.headers = headers
        self.peer = peer
    }
}

/// What a handler answers.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var contentType: String
    public var body: [UInt8]
    /// Extra headers, e.g. `Cache-Control`.
    public var headers: [(name: String, value: String)]

    public init(status: Int = 200, contentType: String = "text/plain; charset=utf-8", body: [UInt8], headers: [(name: String, value: String)] = []) {
        self.status = status
        self.contentType = contentType
        self.body = body
        self.headers = headers
    }

    public init(status: Int = 200, text: String) {
        self.init(status: status, body: Array(text.utf8))
    }

    /// A JSON body.
    public static func json(_ text: String, status: Int = 200) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", body: Array(text.utf8), headers: [("cache-control", "no-store")])
    }

    /// `{"error": reason}` with a status.
    public static func error(_ status: Int, _ reason: String) -> HTTPResponse {
        .json(#"{"error":\#(JSONText.quoted(reason))}"#, status: status)
    }
}

/// Answers one HTTP request, from any thread, at most once (later calls are ignored).
public struct HTTPResponder: Sendable {
    let deliver: @Sendable (HTTPResponse) -> Void

    public func respond(_ response: HTTPResponse) { deliver(response) }
}

/// What to do with a WebSocket upgrade request.
public enum UpgradeDecision: Sendable, Equatable {
    case accept
    /// Refuse with an HTTP status (401, 403, 404, 429, 503…) and a short reason.
    case reject(status: Int, reason: String)
}

/// Reason phrases of the status codes the servers answer with.
public enum HTTPStatus {
    public static func reasonPhrase(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 204: "No Content"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 503: "Service Unavailable"
        default: status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error"
        }
    }
}

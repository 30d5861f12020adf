public import Foundation
import TrafficModel
import Digest
public import Websockets

/// Who may connect and which cameras they may watch.
///
/// Off by default. With a static token every client must present it; with an HS256 secret every
/// client must present a valid JWT signed with it, with an `exp` claim (unless allowed without) and
/// a `cameras` claim (an array of camera ids, or `"*"`) naming what it may watch; without one it
/// may watch nothing. The token comes as `Authorization: Bearer …`
/// or, for browsers (which cannot set headers on a WebSocket), as `?token=…`. An Origin
/// allow-list, when given, refuses requests whose `Origin` is not on it.
public struct AccessPolicy: Sendable {
    public enum Mode: Sendable, Equatable {
        case open
        case staticToken(String)
        case jwtHS256(secret: [UInt8])
    }

    public var mode: Mode
    /// Allowed `Origin` values (exact, e.g. `https://ops.example.com`); empty allows any.
    public var allowedOrigins: Set<String>
    /// Accept JWTs without an `exp` claim (off: such tokens are refused).
    public var allowTokensWithoutExpiry: Bool

    public init(mode: Mode = .open, allowedOrigins: Set<String> = [], allowTokensWithoutExpiry: Bool = false) {
        self.mode = mode
        self.allowedOrigins = allowedOrigins
        self.allowTokensWithoutExpiry = allowTokensWithoutExpiry
    }

    /// Checks an upgrade (or API) request; returns what the client may watch.
    public func authorize(_ request: HTTPRequest, now: Date = Date()) -> Result<CameraPermission, AccessDenied> {
        // Browsers always send Origin on a WebSocket upgrade, so a page from elsewhere is refused;
        // clients that are not browsers send none and are judged by their token alone.
        if !allowedOrigins.isEmpty, let origin = request.headers["origin"], !allowedOrigins.contains(origin) {
            return .failure(.init(status: 403, reason: "origin '\(origin)' is not allowed"))
        }
        switch mode {
        case .open:
            return .success(.all)
        case .staticToken(let expected):
            guard let token = Self.token(in: request) else { return .failure(.init(status: 401, reason: "a bearer token is required")) }
            guard HMACSHA256.constantTimeEqual(Array(token.utf8), Array(expected.utf8)) else {
                return .failure(.init(status: 401, reason: "invalid token"))
            }
            return .success(.all)
        case .jwtHS256(let secret):
            guard let token = Self.token(in: request) else { return .failure(.init(status: 401, reason: "a bearer token is required")) }
            return JWT.verify(token, secret: secret, now: now, requireExpiry: !allowTokensWithoutExpiry).mapError { AccessDenied(status: 401, reason: $0.reason) }
        }
    }

    static func token(in request: HTTPRequest) -> String? {
        if let header = request.headers["authorization"] {
            let parts = header.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { return String(parts[1]).trimmingCharacters(in: .whitespaces) }
        }
        if let token = request.query["token"], !token.isEmpty { return token }
        return nil
    }
}

/// A refused connection: the HTTP status and why.
public struct AccessDenied: Error, Sendable, Equatable {
    public var status: Int
    public var reason: String
}

/// HS256 JSON Web Tokens: verification (and signing, for tools and tests).
public enum JWT {
    public struct Invalid: Error, Sendable, Equatable {
        public var reason: String
    }

    /// Verifies signature, `alg`, `exp` and `nbf`; returns the `cameras` claim as a permission.
    ///
    /// Claims are typed: `exp` and `nbf` must be numbers (NumericDate) when present, and `exp`
    /// must be present unless `requireExpiry` is false; `cameras` is an array of camera ids or
    /// `"*"`, and a token without it may watch no camera.
    public static func verify(_ token: String, secret: [UInt8], now: Date = Date(), requireExpiry: Bool = true) -> Result<CameraPermission, Invalid> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(.init(reason: "token is not a JWT (expected header.payload.signature)")) }
        guard let headerBytes = base64URLDecode(parts[0]),
              let header = try? JSONDecoder().decode(JWTHeader.self, from: Data(headerBytes)) else {
            return .failure(.init(reason: "JWT header is not base64url JSON"))
        }
        guard header.alg?.value == "HS256" else { return .failure(.init(reason: "JWT alg must be HS256")) }
        guard let signature = base64URLDecode(parts[2]) else { return .failure(.init(reason: "JWT signature is not base64url")) }
        let expected = HMACSHA256.authenticate(Array("\(parts[0]).\(parts[1])".utf8), key: secret)
        guard HMACSHA256.constantTimeEqual(signature, expected) else { return .failure(.init(reason: "JWT signature does not match")) }
        guard let payloadBytes = base64URLDecode(parts[1]),
              let members = try? payloadBytes.withUnsafeBufferPointer({ buffer throws(JSONSyntaxError) in try JSONScanner.objectMembers(buffer) }) else {
            return .failure(.init(reason: "JWT payload is not base64url JSON"))
        }
        func claim(_ name: String) -> JSONMember? { members.last { $0.key == name } }
        func number(_ name: String) -> Result<Double?, Invalid> {
            guard let member = claim(name) else { return .success(nil) }
            guard member.kind == .number, let value = Double(String(decoding: payloadBytes[member.valueRange], as: UTF8.self)) else {
                return .failure(.init(reason: "JWT claim '\(name)' must be a number (seconds since 1970)"))
            }
            return .success(value)
        }
        let seconds = now.timeIntervalSince1970
        let exp: Double?
        let nbf: Double?
        switch (number("exp"), number("nbf")) {
        case (.failure(let invalid), _), (_, .failure(let invalid)): return .failure(invalid)
        case (.success(let e), .success(let n)): (exp, nbf) = (e, n)
        }
        if let exp, exp <= seconds { return .failure(.init(reason: "JWT expired")) }
        if exp == nil, requireExpiry { return .failure(.init(reason: "JWT has no 'exp' claim (tokens without expiry are refused unless the gateway allows them)")) }
        if let nbf, nbf > seconds { return .failure(.init(reason: "JWT not valid yet")) }
        guard let cameras = claim("cameras") else { return .success(.only([])) }
        let badCameras = Invalid(reason: "JWT claim 'cameras' must be an array of camera ids or \"*\"")
        switch cameras.kind {
        case .string:
            guard payloadBytes.withUnsafeBufferPointer({ JSONScanner.decodeString($0, cameras.valueRange) }) == "*" else {
                return .failure(badCameras)
            }
            return .success(.all)
        case .array:
            guard let list = try? JSONDecoder().decode([Lenient<CameraIDValue>].self, from: Data(payloadBytes[cameras.valueRange])) else {
                return .failure(badCameras)
            }
            var allowed: Set<Int> = []
            for item in list {
                guard let camera = item.value?.id else { return .failure(.init(reason: "JWT claim 'cameras' holds a value that is not a camera id")) }
                allowed.insert(camera)
            }
            return .success(.only(allowed))
        default:
            return .failure(badCameras)
        }
    }

    /// The largest token `traffic-gateway token` issues: it fits the gateway's request target
    /// (`?token=`) and header budgets with room to spare.
    public static let maximumIssuedBytes = 12 * 1024

    /// Signs `claims` (a JSON object text) with HS256.
    public static func sign(claims: String, secret: [UInt8]) -> String {
        let header = base64URLEncode(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = base64URLEncode(Array(claims.utf8))
        let signature = HMACSHA256.authenticate(Array("\(header).\(payload)".utf8), key: secret)
        return "\(header).\(payload).\(base64URLEncode(signature))"
    }

    static func base64URLDecode(_ text: Substring) -> [UInt8]? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64).map { Array($0) }
    }

    static func base64URLEncode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}

/// A JWT's header: only `alg` matters (a wrong type reads as absent).
struct JWTHeader: Decodable {
    var alg: Lenient<String>?
}

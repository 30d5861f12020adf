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
            return JWT.verify(token, secret: secret, now: now, requireExpiry: !allowTokensWithoutExpiry).mapError(Self.denial)
        }
    }

    /// A token that does not verify is unauthorized (401); one this node cannot check now
    /// (libcrypto failed) is refused as unavailable (503: retry, here or on another node).
    static func denial(_ invalid: JWT.Invalid) -> AccessDenied {
        AccessDenied(status: invalid.unverifiable == nil ? 401 : 503, reason: invalid.reason)
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

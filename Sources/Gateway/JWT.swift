public import Foundation
import TrafficModel
public import Digest

/// HS256 JSON Web Tokens: verification (and signing, for tools and tests).
public enum JWT {
    public struct Invalid: Error, Sendable, Equatable {
        public var reason: String
        /// Set when the signature could not be checked at all (libcrypto failed): the token may
        /// be fine, so it is refused for now rather than called invalid.
        public var unverifiable: DigestError? = nil
    }

    /// The MAC function a verification uses (HMAC-SHA256; replaced in tests).
    typealias Authenticate = (_ message: [UInt8], _ key: [UInt8]) throws(DigestError) -> [UInt8]

    /// Verifies signature, `alg`, `exp` and `nbf`; returns the `cameras` claim as a permission.
    ///
    /// Claims are typed: `exp` and `nbf` must be numbers (NumericDate) when present, and `exp`
    /// must be present unless `requireExpiry` is false; `cameras` is an array of camera ids or
    /// `"*"`, and a token without it may watch no camera.
    public static func verify(_ token: String, secret: [UInt8], now: Date = Date(), requireExpiry: Bool = true) -> Result<CameraPermission, Invalid> {
        verify(token, secret: secret, now: now, requireExpiry: requireExpiry, authenticate: HMACSHA256.authenticate)
    }

    static func verify(_ token: String, secret: [UInt8], now: Date, requireExpiry: Bool, authenticate: Authenticate) -> Result<CameraPermission, Invalid> {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .failure(.init(reason: "token is not a JWT (expected header.payload.signature)")) }
        let notJSONHeader = Invalid(reason: "JWT header is not base64url JSON")
        guard let headerBytes = base64URLDecode(parts[0]) else { return .failure(notJSONHeader) }
        let header: JWTHeader
        do {
            header = try JSONDecoder().decode(JWTHeader.self, from: Data(headerBytes))
        } catch {
            return .failure(notJSONHeader)
        }
        guard header.alg?.value == "HS256" else { return .failure(.init(reason: "JWT alg must be HS256")) }
        guard let signature = base64URLDecode(parts[2]) else { return .failure(.init(reason: "JWT signature is not base64url")) }
        let expected: [UInt8]
        do throws(DigestError) {
            expected = try authenticate(Array("\(parts[0]).\(parts[1])".utf8), secret)
        } catch {
            return .failure(.init(reason: "the token's signature cannot be checked now (\(error)); retry shortly", unverifiable: error))
        }
        guard HMACSHA256.constantTimeEqual(signature, expected) else { return .failure(.init(reason: "JWT signature does not match")) }
        guard let payloadBytes = base64URLDecode(parts[1]) else { return .failure(.init(reason: "JWT payload is not base64url JSON")) }
        let members: [JSONMember]
        do throws(JSONSyntaxError) {
            members = try payloadBytes.withUnsafeBufferPointer { buffer throws(JSONSyntaxError) in try JSONScanner.objectMembers(buffer) }
        } catch {
            return .failure(.init(reason: "JWT payload is not base64url JSON (\(error))"))
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
            let list: [Lenient<CameraIDValue>]
            do {
                list = try JSONDecoder().decode([Lenient<CameraIDValue>].self, from: Data(payloadBytes[cameras.valueRange]))
            } catch {
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
    public static func sign(claims: String, secret: [UInt8]) throws(DigestError) -> String {
        let header = base64URLEncode(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))
        let payload = base64URLEncode(Array(claims.utf8))
        let signature = try HMACSHA256.authenticate(Array("\(header).\(payload)".utf8), key: secret)
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

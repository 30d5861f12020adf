import Websockets
import Testing
import TestSupport

@Suite struct HTTPServerTests {
    @Test func servesHandlerResponsesWithStatusTypeAndBody() async throws {
        let port = try FreePort.find()
        let server = try HTTPServer(port: port) { request in
            switch request.path {
            case "/metrics": return HTTPResponse(text: "up 1\n")
            case "/big": return HTTPResponse(body: [UInt8](repeating: UInt8(ascii: "x"), count: 300_000))
            default: return .json(#"{"error":"not found"}"#, status: 404)
            }
        }
        let metrics = try await httpGet(port: port, path: "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.text == "up 1\n")
        #expect(metrics.headers["content-type"]?.hasPrefix("text/plain") == true)
        let missing = try await httpGet(port: port, path: "/nope")
        #expect(missing.status == 404)
        #expect(missing.headers["content-type"] == "application/json")
        #expect(missing.text == #"{"error":"not found"}"#)
        let big = try await httpGet(port: port, path: "/big")
        #expect(big.body.count == 300_000)
        server.stop()
        await #expect(throws: (any Error).self) { _ = try await httpGet(port: port, path: "/metrics", timeout: .seconds(1)) }
    }

    @Test func refusesAPortInUse() throws {
        let port = try FreePort.find()
        let first = try HTTPServer(port: port) { _ in HTTPResponse(text: "a") }
        #expect(throws: HTTPServerError.self) { _ = try HTTPServer(port: port) { _ in HTTPResponse(text: "b") } }
        first.stop()
    }
}

import Foundation
import Testing
import TestSupport
@testable import Gateway

/// Opt-in frame batching (issue 13): several queued results in one `results` frame for the
/// clients that ask, per-result guarantees unchanged, everyone else unaffected.
@Suite struct GatewayBatchingTests {
    @Test func aBatchedClientGetsEveryResultOnceInOrderAcrossARecoveryAndOthersAreUnaffected() async throws {
        let h = try await GatewayHarness()
        let batched = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[5],"batch":true}"#, to: batched)
        try await h.clients.waitFor(batched, type: "snapshot")
        let plain = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[5]}"#, to: plain)
        try await h.clients.waitFor(plain, type: "snapshot")

        // One transaction: one pub/sub burst of 50 results, queued together for each client.
        try await h.publish(camera: 5, count: 50)
        for id in [batched, plain] { try await h.waitForResults(id, count: 50) }
        for id in [batched, plain] {
            #expect(h.results(id).map(\.offset) == Array(1...50), "every result once, in order")
        }
        let batchedTypes = h.types(batched), plainTypes = h.types(plain)
        #expect(batchedTypes.contains("results"), "several queued results went out as one frame: \(batchedTypes.suffix(10))")
        #expect(batchedTypes.filter { $0 == "results" || $0 == "result" }.count < 50)
        #expect(!plainTypes.contains("results") && plainTypes.filter { $0 == "result" }.count == 50, "a client that did not ask gets one frame per result")

        // Gone for a while, back from its position: the replay comes batched, then live, with
        // no gap and no duplicate.
        let epoch = try #require(h.clients.objects(plain).first { $0["type"] as? String == "result" }?["epoch"] as? String)
        h.clients.close(batched)
        _ = try await h.clients.waitClosed(batched)
        try await h.publish(camera: 5, count: 30)
        try await h.waitForResults(plain, count: 80)
        let back = try await h.clients.open()
        h.clients.send(#"{"type":"subscribe","cameras":[5],"since":{"5":{"offset":50,"epoch":"\#(epoch)"}},"batch":true}"#, to: back)
        let recovered = try await h.clients.waitFor(back, type: "recovered")
        #expect(recovered["recovered"] as? Bool == true && recovered["missed"] as? Int == 30, "\(recovered)")
        try await h.publish(camera: 5, count: 10)
        try await h.waitForResults(back, count: 40)
        #expect(h.results(back).map(\.offset) == Array(51...90), "replayed and live, each once and in order")
        #expect(h.types(back).contains("results"), "the replay went out batched")
        try await h.waitForResults(plain, count: 90)
        #expect(h.results(plain).map(\.offset) == Array(1...90))
        await h.shutdown()
    }

    @Test func batchingIsAskedWithABooleanAndOnConnect() async throws {
        #expect(ClientRequest.parse(Array(#"{"type":"subscribe","cameras":[1],"batch":true}"#.utf8)) == .success(.subscribe(.cameras([1]), since: [:], batch: true)))
        #expect(ClientRequest.parse(Array(#"{"type":"subscribe","cameras":[1]}"#.utf8)) == .success(.subscribe(.cameras([1]), since: [:], batch: false)))
        guard case .failure(let error) = ClientRequest.parse(Array(#"{"type":"subscribe","cameras":[1],"batch":"yes"}"#.utf8)) else {
            Issue.record("a batch that is not a boolean must be refused")
            return
        }
        #expect(error.reason == "invalid_field" && error.detail.contains("batch"))

        let h = try await GatewayHarness()
        let listener = try await h.clients.open(path: "/ws/cameras/9?batch=1")
        try await h.clients.waitFor(listener, type: "snapshot")
        try await h.publish(camera: 9, count: 20)
        try await h.waitForResults(listener, count: 20)
        #expect(h.results(listener).map(\.offset) == Array(1...20))
        #expect(h.types(listener).contains("results"), "asked on connect: \(h.types(listener))")
        await h.shutdown()
    }
}

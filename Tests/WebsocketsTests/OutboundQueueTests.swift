import Testing
@testable import Websockets

/// The slow-client policy without a server: what a connection's queue admits.
@Suite struct OutboundQueueTests {
    func frame(_ bytes: Int) -> OutboundFrame { OutboundFrame([UInt8](repeating: 0x61, count: bytes)) }

    @Test func aBacklogOverTheLimitIsRefusedButOneLargeFrameIsNot() {
        var queue = OutboundQueue()
        // One frame far over the limit: not a backlog, admitted.
        let admitted1 = queue.append(frame(10_000), allowance: 0, limit: 1_000)
        #expect(admitted1)
        // Small frames beside it count until they pass the limit.
        for _ in 0..<10 {
            let admitted = queue.append(frame(100), allowance: 0, limit: 1_000)
            #expect(admitted)
        }
        let admitted2 = queue.append(frame(100), allowance: 0, limit: 1_000)
        #expect(!admitted2, "1,000 bytes besides the largest frame, then more: over")
        #expect(queue.count == 11 && queue.queuedBytes == 11_000)
    }

    @Test func writtenFramesLeaveAndTheLargestIsFoundAgain() {
        var queue = OutboundQueue()
        let admitted3 = queue.append(frame(900), allowance: 0, limit: 1_000)
        #expect(admitted3)
        let admitted4 = queue.append(frame(500), allowance: 0, limit: 1_000)
        #expect(admitted4)
        let admitted5 = queue.append(frame(500), allowance: 0, limit: 1_000)
        #expect(admitted5)
        // Written: the 900-byte frame. The largest left is a 500-byte one, so 500 count now.
        queue.removeFirst()
        #expect(queue.first?.count == 500 && queue.queuedBytes == 1_000)
        let admitted6 = queue.append(frame(400), allowance: 0, limit: 1_000)
        #expect(admitted6)
        let admitted7 = queue.append(frame(200), allowance: 0, limit: 1_000)
        #expect(!admitted7)
        while queue.first != nil { queue.removeFirst() }
        queue.compact()
        #expect(queue.isEmpty && queue.queuedBytes == 0 && queue.head == 0)
    }

    @Test func aBurstMayGoAsFarPastTheLimitAsItsAllowanceAndLiveFramesIgnoreIt() {
        var queue = OutboundQueue()
        for _ in 0..<5 {
            let admitted = queue.append(frame(1_000), allowance: 6_000, limit: 1_000)
            #expect(admitted)
        }
        let admitted8 = queue.append(frame(3_000), allowance: 6_000, limit: 1_000)
        #expect(!admitted8, "past limit + allowance")
        // Live frames are judged besides the burst.
        let admitted9 = queue.append(frame(200), allowance: 0, limit: 1_000)
        #expect(admitted9)
        let admitted10 = queue.append(frame(200), allowance: 0, limit: 1_000)
        #expect(admitted10)
        #expect(queue.count == 7)
    }

    @Test func compactingKeepsOrderAfterManyWrites() {
        var queue = OutboundQueue()
        let frames = (1...100).map { frame($0) }
        for f in frames { _ = queue.append(f, allowance: 0, limit: 1 << 20) }
        for _ in 0..<70 { queue.removeFirst() }
        queue.compact()
        #expect(queue.head == 0 && queue.count == 30 && queue.first === frames[70])
        #expect(queue.queuedBytes == (71...100).reduce(0, +))
    }
}

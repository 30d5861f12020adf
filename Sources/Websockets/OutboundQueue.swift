/// One connection's frames waiting for its socket, bounded in bytes: the slow-client policy as a
/// plain value, tested without a server.
///
/// "Too slow" is a backlog the client fails to drain, never one large frame: the largest live
/// frame still queued does not count toward the limit. A burst (a snapshot, a recovery: all a
/// client asked for at once) may take the queue as far past the limit as its allowance, and live
/// frames are judged by what is queued besides an ongoing burst.
struct OutboundQueue {
    private(set) var frames: [OutboundFrame] = []
    /// Per queued frame: part of a burst.
    private var burst: [Bool] = []
    /// Index of the next frame to write.
    private(set) var head = 0
    /// Bytes queued and not written.
    private(set) var queuedBytes = 0
    /// Bytes of burst frames queued and not written.
    private var burstBytes = 0
    /// Index of the largest live frame still queued (among equal sizes the latest, so it is
    /// rarely passed and searched again).
    private var largestLiveFrame: Int?

    /// No frame waits.
    var isEmpty: Bool { head == frames.count }

    /// Frames waiting.
    var count: Int { frames.count - head }

    /// The next frame to write.
    var first: OutboundFrame? { head < frames.count ? frames[head] : nil }

    /// Queues `frame` unless that takes the backlog over `limit` (plus `allowance` for a burst
    /// frame); false when over.
    mutating func append(_ frame: OutboundFrame, allowance: Int, limit: Int) -> Bool {
        let largestQueued = largestLiveFrame.map { frames[$0].count } ?? 0
        let queued = (allowance > 0 ? queuedBytes : queuedBytes - burstBytes) + frame.count
        let largest = max(largestQueued, allowance > 0 ? 0 : frame.count)
        if queued - largest > limit + allowance { return false }
        if allowance == 0, frame.count >= largestQueued { largestLiveFrame = frames.count }
        frames.append(frame)
        burst.append(allowance > 0)
        queuedBytes += frame.count
        if allowance > 0 { burstBytes += frame.count }
        return true
    }

    /// The first frame was written.
    mutating func removeFirst() {
        let frame = frames[head]
        if burst[head] { burstBytes -= frame.count }
        head += 1
        queuedBytes -= frame.count
        if let largest = largestLiveFrame, largest < head { findLargestLiveFrame() }
    }

    /// After a round of writes: storage of written frames is let go (at once when everything
    /// went, else once 64 have).
    mutating func compact() {
        if isEmpty {
            removeAll(keepingCapacity: frames.count <= 64)
        } else if head >= 64 {
            frames.removeFirst(head)
            burst.removeFirst(head)
            largestLiveFrame = largestLiveFrame.map { $0 - head }
            head = 0
        }
    }

    /// Drops every queued frame (sent, or the connection is closing).
    mutating func removeAll(keepingCapacity: Bool) {
        frames.removeAll(keepingCapacity: keepingCapacity)
        burst.removeAll(keepingCapacity: true)
        head = 0
        queuedBytes = 0
        burstBytes = 0
        largestLiveFrame = nil
    }

    private mutating func findLargestLiveFrame() {
        largestLiveFrame = nil
        var size = -1
        for index in head..<frames.count where !burst[index] && frames[index].count >= size {
            largestLiveFrame = index
            size = frames[index].count
        }
    }
}

import Testing
@testable import Aggregator

/// The batch loop's state machine without Kafka or Redis: messages are Ints, a prepared batch
/// and a running write are Strings naming them.
@Suite struct BatchPipelineTests {
    typealias Pipeline = BatchPipeline<Int, String, String>

    /// The step as text, for comparing a run with the expected script.
    func describe(_ step: Pipeline.Step) -> String {
        switch step {
        case .poll(let wait): wait ? "poll(wait)" : "poll(now)"
        case .prepare(let messages): "prepare\(messages)"
        case .finish(let write): "finish(\(write))"
        case .start(let prepared): "start(\(prepared))"
        }
    }

    @Test func theNextBatchIsPreparedWhileAWriteRunsAndWritesStartInOrder() {
        var pipeline = Pipeline()
        var steps: [String] = []
        func step() -> Pipeline.Step { let s = pipeline.next(); steps.append(describe(s)); return s }

        _ = step(); pipeline.polled([])            // nothing yet
        _ = step(); pipeline.polled([1, 2])
        _ = step(); pipeline.prepared("A", rest: [])
        _ = step(); pipeline.started("write A")
        #expect(pipeline.inFlight == "write A")
        _ = step(); pipeline.polled([3])           // arrives while A is written: prepared meanwhile
        _ = step(); pipeline.prepared("B", rest: [4]) // cut by the byte budget: 4 comes next
        _ = step(); pipeline.finished(polled: [5])  // A's write retried; 5 arrived meanwhile
        _ = step(); pipeline.started("write B")
        _ = step(); pipeline.prepared("C", rest: [])
        _ = step(); pipeline.finished(polled: [])
        _ = step(); pipeline.started("write C")
        _ = step(); pipeline.polled([])            // nothing more: C is waited for
        _ = step(); pipeline.finished(polled: [])
        #expect(pipeline.inFlight == nil)
        _ = step()

        #expect(steps == [
            "poll(wait)", "poll(wait)", "prepare[1, 2]", "start(A)",
            "poll(now)", "prepare[3]", "finish(write A)", "start(B)",
            "prepare[4, 5]", "finish(write B)", "start(C)",
            "poll(now)", "finish(write C)", "poll(wait)",
        ])
    }

    @Test func whatArrivesWhileAWriteIsRetriedIsPreparedNext() {
        var pipeline = Pipeline()
        pipeline.polled([1])
        pipeline.prepared("A", rest: [])
        pipeline.started("write A")
        pipeline.polled([])
        guard case .finish("write A") = pipeline.next() else { Issue.record("expected to finish A, got \(pipeline.next())"); return }
        pipeline.finished(polled: [2, 3])
        guard case .prepare(let next) = pipeline.next() else { Issue.record("expected a prepare, got \(pipeline.next())"); return }
        #expect(next == [2, 3])
        #expect(pipeline.inFlight == nil)
    }
}

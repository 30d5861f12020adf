/// The aggregator's batch loop as a state machine with named states: two stages overlap —
/// while batch N's write transaction runs, batch N+1 is polled, validated, its detections
/// fetched and planned — but writes happen one batch at a time, in poll order, and a batch's
/// write starts only after its predecessor's has finished (so offsets are stored in order).
///
/// Pure: the service asks `next()` for the step to take, performs it, and reports what came
/// of it; the transitions are tested without Kafka or Redis. Generic over what a message, a
/// prepared batch and a running write are, so tests use plain values.
struct BatchPipeline<Message, Prepared, Write> {
    enum State {
        /// Nothing to process and no write running: wait for messages.
        case idle
        /// Messages to prepare next; no write running.
        case queued([Message])
        /// A batch's write runs; `next` is prepared meanwhile (empty: take what has arrived).
        case writing(Write, next: [Message])
        /// A write runs and nothing else has arrived: wait for it.
        case awaitingWrite(Write)
        /// The next batch is prepared while its predecessor's write still runs.
        case preparedWhileWriting(Write, Prepared, next: [Message])
        /// A prepared batch whose predecessor has finished: its write may start.
        case ready(Prepared, next: [Message])
    }

    /// What the service does next.
    enum Step {
        /// Poll Kafka: waiting for messages (`wait`), or taking only what is already there (a
        /// write runs, and finishing it must not wait for new messages).
        case poll(wait: Bool)
        /// Stage 1: validate, fetch detections, plan; report `prepared`.
        case prepare([Message])
        /// Stage 2: wait for the write (retrying while Redis fails); report `finished`.
        case finish(Write)
        /// Start the prepared batch's write; report `started`.
        case start(Prepared)
    }

    private(set) var state = State.idle

    /// The step the state asks for.
    func next() -> Step {
        switch state {
        case .idle: .poll(wait: true)
        case .queued(let messages): .prepare(messages)
        case .writing(_, let next) where next.isEmpty: .poll(wait: false)
        case .writing(_, let next): .prepare(next)
        case .awaitingWrite(let write): .finish(write)
        case .preparedWhileWriting(let write, _, _): .finish(write)
        case .ready(let prepared, _): .start(prepared)
        }
    }

    /// The write in flight, if any (awaited, not retried, when the service stops).
    var inFlight: Write? {
        switch state {
        case .writing(let write, _), .awaitingWrite(let write), .preparedWhileWriting(let write, _, _): write
        case .idle, .queued, .ready: nil
        }
    }

    /// A poll returned `messages`.
    mutating func polled(_ messages: [Message]) {
        switch state {
        case .idle:
            state = messages.isEmpty ? .idle : .queued(messages)
        case .writing(let write, let next):
            let all = next + messages
            state = all.isEmpty ? .awaitingWrite(write) : .writing(write, next: all)
        case .queued, .awaitingWrite, .preparedWhileWriting, .ready:
            preconditionFailure("poll reported in \(state), which never asks for one")
        }
    }

    /// Stage 1 planned `prepared`; `rest` comes next, in order (the part of the batch cut off by
    /// the byte budget, then what was polled while waiting).
    mutating func prepared(_ prepared: Prepared, rest: [Message]) {
        switch state {
        case .queued:
            state = .ready(prepared, next: rest)
        case .writing(let write, _):
            state = .preparedWhileWriting(write, prepared, next: rest)
        case .idle, .awaitingWrite, .preparedWhileWriting, .ready:
            preconditionFailure("preparation reported in \(state), which never asks for one")
        }
    }

    /// The write in flight finished; `polled` arrived while it was retried.
    mutating func finished(polled: [Message]) {
        switch state {
        case .awaitingWrite:
            state = polled.isEmpty ? .idle : .queued(polled)
        case .preparedWhileWriting(_, let prepared, let next):
            state = .ready(prepared, next: next + polled)
        case .idle, .queued, .writing, .ready:
            preconditionFailure("a finished write reported in \(state), which has none to finish")
        }
    }

    /// The prepared batch's write started.
    mutating func started(_ write: Write) {
        guard case .ready(_, let next) = state else { preconditionFailure("a write started in \(state)") }
        state = .writing(write, next: next)
    }
}

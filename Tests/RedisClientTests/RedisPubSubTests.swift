import Synchronization
import Testing
import TestSupport
@testable import RedisClient

@Suite struct RedisPubSubTests {
    @Test func deliversChannelMessagesInPublishOrder() async throws {
        let server = try await RedisServer()
        let publisher = try await RedisClient.connect(configuration: server.configuration)
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: server.configuration)
        let channel = uniqueName("camera")
        try await subscriber.subscribe([channel])
        #expect(subscriber.subscriptions.channels == [channel])

        let count = 2_000
        var pipeline = RedisPipeline()
        for i in 0..<count { pipeline.append(.publish(channel, Array("\(i)".utf8))) }
        let replies = try await publisher.execute(pipeline)
        #expect(replies.allSatisfy { $0 == .integer(1) })

        let messages = try await collect(events, "\(count) messages") { events in
            events.filter { if case .message = $0 { true } else { false } }.count == count
        }
        var received: [Int] = []
        for case .message(let message) in messages {
            #expect(message.channel == channel && message.pattern == nil)
            received.append(Int(String(decoding: message.payload, as: UTF8.self)) ?? -1)
        }
        #expect(received == Array(0..<count))
        await subscriber.close()
    }

    @Test func patternSubscriptionAndUnsubscribe() async throws {
        let server = try await RedisServer()
        let publisher = try await RedisClient.connect(configuration: server.configuration)
        let messages = Collector<RedisPubSubMessage>()
        let subscriber = RedisSubscriber(configuration: server.configuration) { event in
            if case .message(let message) = event { messages.append(message) }
        }
        let ns = uniqueName("ns")
        try await subscriber.psubscribe(["\(ns):camera:*"])
        try await subscriber.subscribe(["\(ns):other"])
        _ = try await publisher.send(.publish("\(ns):camera:7", Array("a".utf8)))
        _ = try await publisher.send(.publish("\(ns):other", Array("b".utf8)))
        try await waitUntil("both messages arrived") { messages.count == 2 }
        #expect(messages.values[0] == RedisPubSubMessage(channel: "\(ns):camera:7", pattern: "\(ns):camera:*", payload: Array("a".utf8)))
        #expect(messages.values[1] == RedisPubSubMessage(channel: "\(ns):other", pattern: nil, payload: Array("b".utf8)))

        try await subscriber.punsubscribe(["\(ns):camera:*"])
        #expect(try await publisher.send(.publish("\(ns):camera:7", Array("c".utf8))) == 0, "no subscriber may remain on the pattern")
        _ = try await publisher.send(.publish("\(ns):other", Array("d".utf8)))
        try await waitUntil("the channel message after punsubscribe arrived") { messages.count == 3 }
        #expect(messages.values[2].payload == Array("d".utf8))
        await subscriber.close()
        await #expect(throws: RedisError.self) { try await subscriber.subscribe(["x"]) }
    }

    @Test func resubscribesAfterTheServerIsKilledAndRestarted() async throws {
        let server = try await RedisServer()
        let events = Collector<RedisSubscriberEvent>()
        let subscriber = RedisSubscriber(configuration: server.configuration) { events.append($0) }
        let channel = uniqueName("camera")
        try await subscriber.subscribe([channel])
        server.kill()
        try await waitUntil("the subscriber saw the disconnect") {
            events.values.contains { if case .disconnected = $0 { true } else { false } }
        }
        try await server.start()
        try await waitUntil("the subscriber reconnected", timeout: .seconds(10)) {
            events.values.contains(.reconnected)
        }
        let publisher = try await RedisClient.connect(configuration: server.configuration)
        // The re-subscribe is confirmed after `.reconnected`; publish until a subscriber counts.
        try await waitUntil("the channel has its subscriber again") {
            try await publisher.send(.publish(channel, Array("after".utf8))) == 1
        }
        try await waitUntil("the message published after the restart arrived") {
            events.values.contains(.message(RedisPubSubMessage(channel: channel, pattern: nil, payload: Array("after".utf8))))
        }
        await subscriber.close()
    }

    @Test func boundedStreamDropsOldestAndCountsThem() async throws {
        let server = try await RedisServer()
        let publisher = try await RedisClient.connect(configuration: server.configuration)
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: server.configuration, bufferCapacity: 10, overflow: .dropOldest)
        let channel = uniqueName("slow")
        try await subscriber.subscribe([channel])
        var pipeline = RedisPipeline()
        for i in 0..<100 { pipeline.append(.publish(channel, Array("\(i)".utf8))) }
        _ = try await publisher.execute(pipeline)
        // Nobody reads: 100 messages (+1 confirmation) into a 10-slot buffer.
        try await waitUntil("drops were counted") { subscriber.droppedEvents >= 90 }
        var last: [UInt8] = []
        var iterator = events.makeAsyncIterator()
        for _ in 0..<10 {
            if case .message(let m)? = await iterator.next() { last = m.payload }
        }
        #expect(String(decoding: last, as: UTF8.self) == "99", "the newest message is kept")
        await subscriber.close()
    }
}

/// The subscriber's life: requests racing `close()`, a subscriber dropped without closing.
@Suite struct RedisSubscriberLifecycleTests {
    @Test func aSubscribeRacingCloseIsFailedNotLost() async throws {
        // The thread hangs in AUTH against a server that never answers; meanwhile a subscribe
        // is queued and then close() is asked. When the AUTH times out the thread must leave the
        // request to be failed, not take it and quit.
        let silent = try SilentServer()
        var configuration = try RedisConfiguration(url: "redis://:secret@127.0.0.1:\(silent.port)")
        configuration.commandTimeout = .seconds(5) // the window in which both calls must arrive
        configuration.reconnect = .init(initialDelay: .seconds(5), maximumDelay: .seconds(5))
        let subscriber = RedisSubscriber(configuration: configuration) { _ in }
        try await waitUntil("the subscriber connects", timeout: .seconds(10)) { silent.accepted == 1 }
        let subscribing = Task { () -> RedisError? in
            do throws(RedisError) { try await subscriber.subscribe(["racing"]); return nil } catch { return error }
        }
        try await waitUntil("the request is queued", timeout: .seconds(10)) { subscriber.shared.state.withLock { $0.inbox.count } == 1 }
        let closing = Task { await subscriber.close() }
        let failure = try await withDeadline(.seconds(10), "the subscribe is answered") { await subscribing.value }
        #expect(failure?.kind == .closed, "\(String(describing: failure))")
        try await withDeadline(.seconds(10), "close returns") { await closing.value }
        silent.stop()
    }

    @Test func aDroppedSubscriberClosesItsConnection() async throws {
        let server = try await RedisServer()
        let admin = try await RedisClient.connect(configuration: server.configuration)
        func pubsubClients() async throws -> Int {
            let list = try await admin.send(.raw(["CLIENT", "LIST", "TYPE", "pubsub"]))
            guard case .bulk(let bytes) = list else { return -1 }
            return String(decoding: bytes, as: UTF8.self).split(separator: "\n").count
        }
        var subscriber: RedisSubscriber? = RedisSubscriber(configuration: server.configuration) { _ in }
        try await subscriber?.subscribe([uniqueName("dropped")])
        #expect(try await pubsubClients() == 1)
        subscriber = nil // no close()
        do {
            try await waitUntil("the dropped subscriber's connection is gone", timeout: .seconds(10)) { try await pubsubClients() == 0 }
        } catch {
            let list = try await admin.send(.raw(["CLIENT", "LIST"]))
            Issue.record("\(error); clients: \(list.string ?? "?")")
        }
        await admin.close()
        server.stop()
    }

    @Test func aSubscriberWithoutAWakePipeThrowsAndWorksOnceOneCanBeMade() async throws {
        // As in a process out of file descriptors: the first two attempts to make the wake-up
        // pipe fail. Nothing crashes; subscribing says why, and a later try succeeds.
        let server = try await RedisServer()
        let publisher = try await RedisClient.connect(configuration: server.configuration)
        let attempts = Mutex(0)
        let events = Collector<RedisSubscriberEvent>()
        let subscriber = RedisSubscriber(configuration: server.configuration, handler: { events.append($0) },
                                         onClose: nil, dropCounter: nil, makeWakePipe: {
            let attempt = attempts.withLock { $0 += 1; return $0 }
            return attempt <= 2 ? .failure(RedisError(kind: .resourceUnavailable, message: "pipe(2): Too many open files (errno 24)")) : WakePipe.make()
        })
        let channel = uniqueName("fd")
        await #expect { try await subscriber.subscribe([channel]) } throws: { error in
            let e = error as! RedisError
            return e.kind == .resourceUnavailable && e.isTransient && e.hint.contains("ulimit")
        }
        #expect(subscriber.subscriptions.channels.isEmpty, "nothing held from the failed call")
        try await subscriber.subscribe([channel]) // the third pipe is made: the thread starts
        #expect(attempts.withLock { $0 } == 3)
        _ = try await publisher.send(.publish(channel, Array("hi".utf8)))
        try await waitUntil("the message arrives") { events.values.contains { if case .message = $0 { true } else { false } } }
        await subscriber.close()
        await publisher.close()
    }

    @Test func aSubscriberThatNeverStartedClosesAndFinishesItsStream() async throws {
        let configuration = try RedisConfiguration(url: "redis://127.0.0.1:1")
        let finished = Mutex(false)
        let subscriber = RedisSubscriber(configuration: configuration, handler: { _ in },
                                         onClose: { finished.withLock { $0 = true } }, dropCounter: nil,
                                         makeWakePipe: { .failure(RedisError(kind: .resourceUnavailable, message: "no descriptors")) })
        try await withDeadline(.seconds(10), "close returns") { await subscriber.close() }
        #expect(finished.withLock { $0 }, "onClose ran (a stream's reader is not left waiting)")
        await #expect { try await subscriber.subscribe(["x"]) } throws: { ($0 as! RedisError).kind == .closed }
    }

    @Test func requestsAndCloseInterleavedNeverHang() async throws {
        // Subscribes and closes at once, many times, against a port nobody listens on (the
        // thread loops through connect failures and wake-ups): every call returns.
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(try FreePort.find())")
        configuration.reconnect = .init(initialDelay: .milliseconds(1), maximumDelay: .milliseconds(5))
        let unreachable = configuration
        try await withDeadline(.seconds(60), "200 subscribe/close races end") {
            for _ in 0..<200 {
                let subscriber = RedisSubscriber(configuration: unreachable) { _ in }
                async let subscribed: Void = { try? await subscriber.subscribe(["a", "b"]) }() // try?: .closed by the racing close is an answer too
                async let closed: Void = subscriber.close()
                _ = await (subscribed, closed)
            }
        }
    }
}

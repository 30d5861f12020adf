import Logging
import RedisClient
import Testing
import TestSupport
import TrafficModel
@testable import Gateway

/// The hub's ordering rules, without servers.
@Suite struct SubscriptionHubTests {
    func result(_ camera: Int, _ offset: Int64, epoch: String = "e1") -> LiveResult {
        LiveResult(camera: camera, position: ResultPosition(offset: offset, epoch: epoch), payload: Array(#"{"n":\#(offset)}"#.utf8))
    }

    /// Offsets a client got, live or replayed, in order.
    func delivered(_ actions: [HubAction], to id: ConnectionID) -> [Int64] {
        actions.compactMap {
            switch $0 {
            case .deliver(let r, let ids) where ids.contains(id): r.position?.offset
            case .replay(let r, let to) where to == id: r.position?.offset
            default: nil
            }
        }
    }

    func snapshotGeneration(_ actions: [HubAction]) -> UInt64? {
        actions.lazy.compactMap { if case .fetchSnapshot(_, _, _, let g) = $0 { g } else { nil } }.first
    }

    func recoveryGeneration(_ actions: [HubAction]) -> UInt64? {
        actions.lazy.compactMap { if case .fetchRecovery(_, _, _, let g) = $0 { g } else { nil } }.first
    }

    func catchUpGeneration(_ actions: [HubAction]) -> UInt64? {
        actions.lazy.compactMap { if case .fetchCatchUp(_, _, let g) = $0 { g } else { nil } }.first
    }

    /// On a cluster a camera that appears while "*" is watched is announced before its channel
    /// is subscribed: its live results wait while its history is read from the start.
    @Test func aCameraThatAppearsUnderStarGetsItsFirstResultsFromHistory() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let subscribe = hub.subscribe(1, .all)
        #expect(subscribe.contains(.subscribeAll))
        _ = hub.snapshotReady(1, entries: [], all: true, generation: try #require(snapshotGeneration(subscribe)))
        let appeared = hub.camerasAppeared([9])
        #expect(appeared == [.fetchCatchUp(camera: 9, after: ResultPosition(offset: 0, epoch: ""), generation: try #require(catchUpGeneration(appeared)))])
        // Live results arrive before the history: held.
        #expect(hub.receive(result(9, 4)).isEmpty && hub.receive(result(9, 5)).isEmpty)
        let read = HistoryRead(current: ResultPosition(offset: 5, epoch: "e1"), entries: (1...4).map { result(9, $0) })
        let caughtUp = hub.catchUpReady(camera: 9, generation: try #require(catchUpGeneration(appeared)), read: read)
        #expect(delivered(caughtUp, to: 1) == [1, 2, 3, 4, 5], "every result once, in order")
        #expect(!caughtUp.contains { if case .send(_, .gap) = $0 { true } else { false } }, "no gap notice for a new camera")
        #expect(delivered(hub.receive(result(9, 6)), to: 1) == [6])
        // A camera the hub already follows catches up from where it is; without "*" nothing happens.
        let again = hub.camerasAppeared([9])
        #expect(again == [.fetchCatchUp(camera: 9, after: ResultPosition(offset: 6, epoch: "e1"), generation: try #require(catchUpGeneration(again)))])
        _ = hub.unsubscribe(1, .all)
        #expect(hub.camerasAppeared([10]).isEmpty)
    }

    /// A camera whose subscription was interrupted (its slot moved) catches up alone, without a
    /// notice to clients; other cameras are left alone.
    @Test func aRestoredCameraCatchesUpAloneAndQuietly() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let subscribe = hub.subscribe(1, .cameras([3, 4]))
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 3, latest: result(3, 1)), SnapshotEntry(camera: 4, latest: result(4, 1))], all: false, generation: try #require(snapshotGeneration(subscribe)))
        #expect(delivered(hub.receive(result(3, 2)), to: 1) == [2])
        _ = hub.receive(result(4, 2))
        let restored = hub.camerasRestored([3])
        #expect(restored == [.fetchCatchUp(camera: 3, after: ResultPosition(offset: 2, epoch: "e1"), generation: try #require(catchUpGeneration(restored)))])
        #expect(hub.receive(result(3, 4)).isEmpty, "held while the history is read")
        let caughtUp = hub.catchUpReady(camera: 3, generation: try #require(catchUpGeneration(restored)), read: HistoryRead(current: ResultPosition(offset: 4, epoch: "e1"), entries: [result(3, 3)]))
        #expect(delivered(caughtUp, to: 1) == [3, 4], "what the move missed, then what came meanwhile")
        #expect(!caughtUp.contains { if case .send(_, .status) = $0 { true } else { false } })
        #expect(delivered(hub.receive(result(4, 3)), to: 1) == [3], "the other camera went on")
    }

    @Test func aCameraThatAppearsWithoutAPositionStartsWithItsLiveStream() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let subscribe = hub.subscribe(1, .all)
        _ = hub.snapshotReady(1, entries: [], all: true, generation: try #require(snapshotGeneration(subscribe)))
        let appeared = hub.camerasAppeared([3])
        #expect(hub.receive(result(3, 1)).isEmpty)
        let caughtUp = hub.catchUpReady(camera: 3, generation: try #require(catchUpGeneration(appeared)), read: HistoryRead(current: nil, entries: []))
        #expect(delivered(caughtUp, to: 1) == [1])
        #expect(delivered(hub.receive(result(3, 2)), to: 1) == [2])
    }

    @Test func livePendingUntilSnapshotThenOnlyNewerResults() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let subscribe = hub.subscribe(1, .cameras([7]))
        #expect(subscribe.prefix(2) == [.send(1, .subscribed(cameras: [7], all: false)), .subscribe(camera: 7)])
        let g = try #require(snapshotGeneration(subscribe))
        #expect(delivered(hub.receive(result(7, 5)), to: 1).isEmpty, "buffered while the snapshot is in flight")
        #expect(delivered(hub.receive(result(7, 6)), to: 1).isEmpty)
        let snapshot = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 7, latest: result(7, 5))], all: false, generation: g)
        #expect(snapshot.first == .send(1, .snapshot([SnapshotEntry(camera: 7, latest: result(7, 5))])))
        #expect(delivered(snapshot, to: 1) == [6], "offset 5 is in the snapshot; only 6 follows")
        #expect(delivered(hub.receive(result(7, 7)), to: 1) == [7])
        #expect(delivered(hub.receive(result(7, 7)), to: 1).isEmpty, "a duplicate (channel and pattern) is dropped")
    }

    @Test func aHoleInTheLiveStreamIsFilledFromHistoryBeforeLaterResults() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let g = try #require(snapshotGeneration(hub.subscribe(1, .cameras([3]))))
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 3, latest: nil)], all: false, generation: g)
        #expect(delivered(hub.receive(result(3, 1)), to: 1) == [1])
        let hole = hub.receive(result(3, 4))
        let c = try #require(catchUpGeneration(hole))
        #expect(hole == [.fetchCatchUp(camera: 3, after: ResultPosition(offset: 1, epoch: "e1"), generation: c)])
        #expect(hub.receive(result(3, 5)).isEmpty, "held while catching up")
        #expect(hub.catchUpReady(camera: 3, generation: c + 99, read: HistoryRead(current: nil, entries: [])).isEmpty, "a stale answer is ignored")
        let filled = hub.catchUpReady(camera: 3, generation: c, read: HistoryRead(current: ResultPosition(offset: 5, epoch: "e1"), entries: [result(3, 2), result(3, 3), result(3, 4), result(3, 5)]))
        #expect(delivered(filled, to: 1) == [2, 3, 4, 5])
    }

    @Test func historyThatNoLongerHasTheHoleSendsAGapNotice() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let g = try #require(snapshotGeneration(hub.subscribe(1, .cameras([3]))))
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 3, latest: nil)], all: false, generation: g)
        _ = hub.receive(result(3, 1))
        let c = try #require(catchUpGeneration(hub.receive(result(3, 10))))
        let filled = hub.catchUpReady(camera: 3, generation: c, read: HistoryRead(current: ResultPosition(offset: 10, epoch: "e1"), entries: [result(3, 8), result(3, 9), result(3, 10)]))
        #expect(filled.first == .send(1, .gap(camera: 3, from: 2, to: 7, reason: "no longer in history")))
        #expect(delivered(filled, to: 1) == [8, 9, 10])
    }

    @Test func recoveryIsExactOrRefusedNeverPartial() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let since = ResultPosition(offset: 2, epoch: "e1")
        let g1 = try #require(recoveryGeneration(hub.subscribe(1, .cameras([9]), since: [9: since])))
        _ = hub.receive(result(9, 5)) // live while recovering
        let ok = hub.recoveryReady(1, camera: 9, since: since, generation: g1, read: HistoryRead(current: ResultPosition(offset: 4, epoch: "e1"), entries: [result(9, 3), result(9, 4)]))
        #expect(ok.first == .send(1, .recovered(camera: 9, missed: 2)))
        #expect(delivered(ok, to: 1) == [3, 4, 5])

        hub.connect(2, permission: .all)
        let g2 = try #require(recoveryGeneration(hub.subscribe(2, .cameras([9]), since: [9: since])))
        let trimmed = hub.recoveryReady(2, camera: 9, since: since, generation: g2, read: HistoryRead(current: ResultPosition(offset: 5, epoch: "e1"), entries: [result(9, 4), result(9, 5)]))
        #expect(trimmed.first == .send(2, .recoveryFailed(camera: 9, reason: "history no longer holds offset 3")))
        #expect(snapshotGeneration(trimmed) != nil, "the snapshot replaces the impossible recovery")
        #expect(delivered(trimmed, to: 2).isEmpty)
    }

    @Test func anAnswerForAReplacedSubscriptionIsIgnored() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let old = try #require(snapshotGeneration(hub.subscribe(1, .cameras([4]))))
        _ = hub.unsubscribe(1, .cameras([4]))
        let since = ResultPosition(offset: 7, epoch: "e1")
        let fresh = try #require(recoveryGeneration(hub.subscribe(1, .cameras([4]), since: [4: since])))
        #expect(hub.snapshotReady(1, entries: [SnapshotEntry(camera: 4, latest: result(4, 3))], all: false, generation: old).isEmpty,
                "the first subscription's snapshot must not settle the second")
        let recovered = hub.recoveryReady(1, camera: 4, since: since, generation: fresh, read: HistoryRead(current: ResultPosition(offset: 8, epoch: "e1"), entries: [result(4, 8)]))
        #expect(recovered.first == .send(1, .recovered(camera: 4, missed: 1)))
    }

    @Test func aClientBehindTheStreamIsRepairedFromHistory() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let g = try #require(snapshotGeneration(hub.subscribe(1, .cameras([6]))))
        // The snapshot was older than the stream (e.g. read before a Redis outage).
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 6, latest: result(6, 41))], all: false, generation: g)
        let next = hub.receive(result(6, 51))
        let c = try #require(catchUpGeneration(next), "the camera's continuity starts from the snapshot position")
        let filled = hub.catchUpReady(camera: 6, generation: c, read: HistoryRead(current: ResultPosition(offset: 51, epoch: "e1"), entries: (42...51).map { result(6, $0) }))
        #expect(delivered(filled, to: 1) == Array(42...51))
    }

    @Test func pendingBuffersAreBoundedInBytes() throws {
        var hub = SubscriptionHub(maximumBufferedBytes: 20) // each test payload is 7 bytes
        hub.connect(1, permission: .all)
        _ = hub.subscribe(1, .cameras([2]))
        #expect(hub.receive(result(2, 1)).isEmpty)
        #expect(hub.receive(result(2, 2)).isEmpty)
        #expect(hub.receive(result(2, 3)) == [.close(1, code: 1013, reason: "fell too far behind while catching up")])
    }

    @Test func channelSubscriptionsFollowTheirLastWatcherAndPermissionsHold() {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .only([1, 2]))
        hub.connect(2, permission: .all)
        let refused = hub.subscribe(1, .cameras([2, 3]))
        #expect(refused.first == .send(1, .error(reason: "forbidden", detail: "not allowed to watch camera(s) 3")))
        #expect(refused.contains(.subscribe(camera: 2)))
        #expect(hub.subscribe(1, .all) == [.send(1, .error(reason: "forbidden", detail: "this connection may not watch every camera"))])
        #expect(!hub.subscribe(2, .cameras([2])).contains(.subscribe(camera: 2)), "second watcher: channel already subscribed")
        #expect(hub.subscriptionCount == 2)
        #expect(!hub.disconnect(1).contains(.unsubscribe(camera: 2)))
        #expect(hub.disconnect(2).contains(.unsubscribe(camera: 2)), "last watcher gone: channel released")
        hub.connect(3, permission: .all)
        #expect(hub.subscribe(3, .all).contains(.subscribeAll))
        #expect(hub.subscriptionCount == 1)
        #expect(hub.disconnect(3) == [.unsubscribeAll])
        #expect(hub.subscriptionCount == 0)
    }

    @Test func aPositionSeededBySomeoneElsesSnapshotDoesNotHideResultsFromOthers() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        hub.connect(2, permission: .all)
        let a = try #require(snapshotGeneration(hub.subscribe(1, .cameras([7]))))
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 7, latest: nil)], all: false, generation: a)
        let b = try #require(snapshotGeneration(hub.subscribe(2, .cameras([7]))))
        // B's snapshot already holds 15; live 13…15 are still on their way.
        _ = hub.snapshotReady(2, entries: [SnapshotEntry(camera: 7, latest: result(7, 15), current: ResultPosition(offset: 15, epoch: "e1"))], all: false, generation: b)
        var toA: [Int64] = []
        var toB: [Int64] = []
        for offset: Int64 in 13...16 {
            let actions = hub.receive(result(7, offset))
            toA += delivered(actions, to: 1)
            toB += delivered(actions, to: 2)
        }
        #expect(toA == [13, 14, 15, 16], "A had nothing: it gets everything")
        #expect(toB == [16], "B's snapshot covered 13…15")
    }

    @Test func aCatchUpThatFindsRedisRolledBackRestartsClientsFromThere() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let g = try #require(snapshotGeneration(hub.subscribe(1, .cameras([8]))))
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 8, latest: nil)], all: false, generation: g)
        for offset: Int64 in 1...10 { _ = hub.receive(result(8, offset)) }
        _ = hub.redisLost()
        let c = try #require(catchUpGeneration(hub.redisRestored()))
        let back = hub.catchUpReady(camera: 8, generation: c, read: HistoryRead(current: ResultPosition(offset: 7, epoch: "e1"), entries: []))
        #expect(back.contains { if case .send(1, .gap(8, nil, nil, _)) = $0 { true } else { false } })
        #expect(delivered(hub.receive(result(8, 8)), to: 1) == [8], "the reused offset 8 is a new result, not a duplicate")
        #expect(delivered(hub.receive(result(8, 9)), to: 1) == [9])
    }

    @Test func aCatchUpThatFindsANewEpochFetchesItFromTheStart() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let g = try #require(snapshotGeneration(hub.subscribe(1, .cameras([5]))))
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 5, latest: nil)], all: false, generation: g)
        _ = hub.receive(result(5, 1))
        let c = try #require(catchUpGeneration(hub.receive(result(5, 3))))
        let restarted = hub.catchUpReady(camera: 5, generation: c, read: HistoryRead(current: ResultPosition(offset: 2, epoch: "e2"), entries: []))
        let c2 = try #require(catchUpGeneration(restarted))
        #expect(restarted.contains(.fetchCatchUp(camera: 5, after: ResultPosition(offset: 0, epoch: "e2"), generation: c2)))
        let filled = hub.catchUpReady(camera: 5, generation: c2, read: HistoryRead(current: ResultPosition(offset: 2, epoch: "e2"), entries: [result(5, 1, epoch: "e2"), result(5, 2, epoch: "e2")]))
        #expect(delivered(filled, to: 1) == [1, 2])
        #expect(catchUpGeneration(filled) == nil, "the old epoch's held result is dropped, not chased again")
        #expect(delivered(hub.receive(result(5, 3, epoch: "e2")), to: 1) == [3], "live results of the new epoch flow")
    }

    @Test func aGapOnlyReachesClientsThatMissedSomething() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        hub.connect(2, permission: .all)
        let g1 = try #require(snapshotGeneration(hub.subscribe(1, .cameras([3]))))
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 3, latest: nil)], all: false, generation: g1)
        _ = hub.receive(result(3, 1))
        let c = try #require(catchUpGeneration(hub.receive(result(3, 40))))
        // Client 2 arrives meanwhile with a recovery that already took it to 39.
        let r = try #require(recoveryGeneration(hub.subscribe(2, .cameras([3]), since: [3: ResultPosition(offset: 38, epoch: "e1")])))
        _ = hub.recoveryReady(2, camera: 3, since: ResultPosition(offset: 38, epoch: "e1"), generation: r, read: HistoryRead(current: ResultPosition(offset: 39, epoch: "e1"), entries: [result(3, 39)]))
        let filled = hub.catchUpReady(camera: 3, generation: c, read: HistoryRead(current: ResultPosition(offset: 40, epoch: "e1"), entries: [result(3, 39), result(3, 40)]))
        #expect(filled.contains(.send(1, .gap(camera: 3, from: 2, to: 38, reason: "no longer in history"))))
        #expect(!filled.contains { if case .send(2, .gap) = $0 { true } else { false } }, "client 2 lost nothing")
        #expect(delivered(filled, to: 1) == [39, 40])
        #expect(delivered(filled, to: 2) == [40], "no duplicate of 39")
    }

    @Test func unsubscribingANamedCameraKeepsItsWatchUnderTheWildcard() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let since = ResultPosition(offset: 90, epoch: "e1")
        let subscribe = hub.subscribe(1, .all, since: [7: since])
        let r = try #require(recoveryGeneration(subscribe))
        _ = hub.subscribe(1, .cameras([7]))
        _ = hub.unsubscribe(1, .cameras([7]))
        let recovered = hub.recoveryReady(1, camera: 7, since: since, generation: r, read: HistoryRead(current: ResultPosition(offset: 92, epoch: "e1"), entries: [result(7, 91), result(7, 92)]))
        #expect(recovered.first == .send(1, .recovered(camera: 7, missed: 2)), "the recovery in flight still lands")
    }

    @Test func aFailedRepairIsFollowedByAGapNoticeNotAnotherRepair() throws {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let g = try #require(snapshotGeneration(hub.subscribe(1, .cameras([4]))))
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 4, latest: result(4, 10))], all: false, generation: g)
        _ = hub.receive(result(4, 10))
        // Continuity says 11 is next, but this client's snapshot is from before a trimmed stretch.
        hub.connect(2, permission: .all)
        let g2 = try #require(snapshotGeneration(hub.subscribe(2, .cameras([4]))))
        _ = hub.snapshotReady(2, entries: [SnapshotEntry(camera: 4, latest: result(4, 2))], all: false, generation: g2)
        let repair = hub.receive(result(4, 11))
        let r = try #require(recoveryGeneration(repair))
        let failed = hub.recoveryReady(2, camera: 4, since: ResultPosition(offset: 2, epoch: "e1"), generation: r, read: HistoryRead(current: ResultPosition(offset: 11, epoch: "e1"), entries: [result(4, 9), result(4, 10), result(4, 11)]))
        let s = try #require(snapshotGeneration(failed))
        let snapshot = hub.snapshotReady(2, entries: [SnapshotEntry(camera: 4, latest: result(4, 2))], all: false, generation: s)
        #expect(recoveryGeneration(snapshot) == nil, "no second repair")
        #expect(snapshot.contains(.send(2, .gap(camera: 4, from: 3, to: 10, reason: "no longer in history"))))
        #expect(delivered(snapshot, to: 2) == [11])
    }

    @Test func aConnectionMayNameOnlySoManyCameras() {
        var hub = SubscriptionHub(maximumCamerasPerClient: 3)
        hub.connect(1, permission: .all)
        let actions = hub.subscribe(1, .cameras([1, 2, 3, 4, 5]))
        #expect(actions.contains { if case .send(1, .error("too_many_cameras", _)) = $0 { true } else { false } })
        #expect(actions.contains(.send(1, .subscribed(cameras: [1, 2, 3], all: false))))
        #expect(hub.subscriptionCount == 3)
    }
}

/// The ordered subscription queue's end.
@Suite struct SubscriptionQueueTests {
    @Test func finishingAnswersTheBarriersStillQueuedAtOnce() async throws {
        // Changes can never be confirmed (nothing listens), so a barrier waits behind twenty of
        // them (a second each); finishing the queue answers it without applying them.
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:\(try FreePort.find())")
        configuration.reconnect = .init(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200))
        let subscriber = RedisSubscriber(configuration: configuration) { _ in }
        let queue = SubscriptionQueue(channels: ServerChannels(subscriber: subscriber, keys: KeySchema()), logger: Logger(label: "test"), confirmationTimeout: .seconds(1))
        for camera in 0..<20 { queue.subscribe("camera:\(camera)") }
        let answered = Task { await queue.barrier(); return true }
        try await waitUntil("the barrier is queued behind the changes") { queue.pendingBarriers == 1 }
        queue.finish()
        #expect(try await withDeadline(.seconds(8), "the barrier is answered (not after 20 s of changes)") { await answered.value })
        await subscriber.close()
    }
}

/// The control messages' Codable model: what is accepted, and which field an error names.
@Suite struct ClientRequestTests {
    func parse(_ text: String) -> Result<ClientRequest, ClientRequestError> { ClientRequest.parse(Array(text.utf8)) }

    @Test func acceptedForms() {
        #expect(parse(#"{"type":"ping"}"#) == .success(.ping))
        #expect(parse(#"{"type":"subscribe","cameras":"*"}"#) == .success(.subscribe(.all, since: [:])))
        #expect(parse(#"{"type":"subscribe","cameras":[3,"4",5.0],"since":null}"#) == .success(.subscribe(.cameras([3, 4, 5]), since: [:])))
        #expect(parse(#"{"type":"subscribe","cameras":[7],"since":{"7":{"offset":12,"epoch":"e1"}}}"#)
                == .success(.subscribe(.cameras([7]), since: [7: ResultPosition(offset: 12, epoch: "e1")])))
        #expect(parse(#"{"type":"unsubscribe","cameras":[1]}"#) == .success(.unsubscribe(.cameras([1]))))
    }

    @Test func errorsNameTheField() {
        func detail(_ text: String) -> String {
            if case .failure(let error) = parse(text) { return "\(error.reason): \(error.detail)" }
            return "accepted"
        }
        #expect(detail("[1]").hasPrefix("malformed_json"))
        #expect(detail(#"{"type":7}"#).hasPrefix("missing_field"))
        #expect(detail(#"{"type":"subscribe","cameras":[1,true]}"#) == "invalid_field: cameras[1] is not a camera id (integer ≥ 0)")
        #expect(detail(#"{"type":"subscribe","cameras":[1,2.5]}"#).contains("cameras[1]"))
        #expect(detail(#"{"type":"subscribe"}"#).contains("field 'cameras' must be"))
        #expect(detail(#"{"type":"subscribe","cameras":[\#((0...1000).map(String.init).joined(separator: ","))]}"#).contains("names 1001 cameras"))
        #expect(detail(#"{"type":"subscribe","cameras":[1],"since":[1]}"#).contains("field 'since' must be an object"))
        #expect(detail(#"{"type":"subscribe","cameras":[1],"since":{"x":{"offset":1,"epoch":"e"}}}"#).contains("since key 'x'"))
        #expect(detail(#"{"type":"subscribe","cameras":[1],"since":{"1":{"offset":-1,"epoch":"e"}}}"#).contains("since.1 must be"))
    }
}

import Testing
import TrafficModel
@testable import Gateway

/// The hub's ordering rules, without servers.
@Suite struct SubscriptionHubTests {
    func result(_ camera: Int, _ offset: Int64, epoch: String = "e1") -> LiveResult {
        LiveResult(camera: camera, position: ResultPosition(offset: offset, epoch: epoch), payload: Array(#"{"n":\#(offset)}"#.utf8))
    }

    func delivered(_ actions: [HubAction], to id: ConnectionID) -> [Int64] {
        actions.compactMap { if case .deliver(let r, let ids) = $0, ids.contains(id) { return r.position?.offset } else { return nil } }
    }

    @Test func livePendingUntilSnapshotThenOnlyNewerResults() {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let subscribe = hub.subscribe(1, .cameras([7]))
        #expect(subscribe == [.send(1, .subscribed(cameras: [7], all: false)), .subscribe(camera: 7), .fetchSnapshot(1, cameras: [7], all: false)])
        #expect(delivered(hub.receive(result(7, 5)), to: 1).isEmpty, "buffered while the snapshot is in flight")
        #expect(delivered(hub.receive(result(7, 6)), to: 1).isEmpty)
        let snapshot = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 7, latest: result(7, 5))], all: false)
        #expect(snapshot.first == .send(1, .snapshot([SnapshotEntry(camera: 7, latest: result(7, 5))])))
        #expect(delivered(snapshot, to: 1) == [6], "offset 5 is in the snapshot; only 6 follows")
        #expect(delivered(hub.receive(result(7, 7)), to: 1) == [7])
        #expect(delivered(hub.receive(result(7, 7)), to: 1).isEmpty, "a duplicate (channel and pattern) is dropped")
    }

    @Test func aHoleInTheLiveStreamIsFilledFromHistoryBeforeLaterResults() {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        _ = hub.subscribe(1, .cameras([3]))
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 3, latest: nil)], all: false)
        #expect(delivered(hub.receive(result(3, 1)), to: 1) == [1])
        let hole = hub.receive(result(3, 4))
        #expect(hole == [.fetchCatchUp(camera: 3, after: ResultPosition(offset: 1, epoch: "e1"))])
        #expect(hub.receive(result(3, 5)).isEmpty, "held while catching up")
        let filled = hub.catchUpReady(camera: 3, read: HistoryRead(current: ResultPosition(offset: 5, epoch: "e1"), entries: [result(3, 2), result(3, 3), result(3, 4), result(3, 5)]))
        #expect(delivered(filled, to: 1) == [2, 3, 4, 5])
    }

    @Test func historyThatNoLongerHasTheHoleSendsAGapNotice() {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        _ = hub.subscribe(1, .cameras([3]))
        _ = hub.snapshotReady(1, entries: [SnapshotEntry(camera: 3, latest: nil)], all: false)
        _ = hub.receive(result(3, 1))
        _ = hub.receive(result(3, 10))
        let filled = hub.catchUpReady(camera: 3, read: HistoryRead(current: ResultPosition(offset: 10, epoch: "e1"), entries: [result(3, 8), result(3, 9), result(3, 10)]))
        #expect(filled.first == .send(1, .gap(camera: 3, from: 2, to: 7, reason: "no longer in history")))
        #expect(delivered(filled, to: 1) == [8, 9, 10])
    }

    @Test func recoveryIsExactOrRefusedNeverPartial() {
        var hub = SubscriptionHub()
        hub.connect(1, permission: .all)
        let since = ResultPosition(offset: 2, epoch: "e1")
        let subscribe = hub.subscribe(1, .cameras([9]), since: [9: since])
        #expect(subscribe.contains(.fetchRecovery(1, camera: 9, since: since)))
        _ = hub.receive(result(9, 5)) // live while recovering
        let ok = hub.recoveryReady(1, camera: 9, since: since, read: HistoryRead(current: ResultPosition(offset: 4, epoch: "e1"), entries: [result(9, 3), result(9, 4)]))
        #expect(ok.first == .send(1, .recovered(camera: 9, missed: 2)))
        #expect(delivered(ok, to: 1) == [3, 4, 5])

        hub.connect(2, permission: .all)
        _ = hub.subscribe(2, .cameras([9]), since: [9: since])
        let trimmed = hub.recoveryReady(2, camera: 9, since: since, read: HistoryRead(current: ResultPosition(offset: 5, epoch: "e1"), entries: [result(9, 4), result(9, 5)]))
        #expect(trimmed == [.send(2, .recoveryFailed(camera: 9, reason: "history no longer holds offset 3")), .fetchSnapshot(2, cameras: [9], all: false)])
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
        #expect(!hub.disconnect(1).contains(.unsubscribe(camera: 2)))
        #expect(hub.disconnect(2).contains(.unsubscribe(camera: 2)), "last watcher gone: channel released")
        hub.connect(3, permission: .all)
        #expect(hub.subscribe(3, .all).contains(.subscribeAll))
        #expect(hub.disconnect(3) == [.unsubscribeAll])
    }
}

import Testing
import TrafficModel

/// The cluster-mode names: the camera id as hash tag, the rest as in single-node mode.
@Suite struct KeySchemaClusterTests {
    @Test func everyCameraNameCarriesItsIdAsHashTag() {
        let keys = KeySchema(namespace: "prod:", hashTagged: true)
        #expect(keys.cameraChannel(7) == "prod:camera:{7}")
        #expect([keys.latest(7), keys.latestTimestamp(7), keys.position(7), keys.history(7), keys.alerted(camera: 7)]
                == ["prod:camera:{7}:latest", "prod:camera:{7}:latest_ts", "prod:camera:{7}:position", "prod:camera:{7}:history", "prod:camera:{7}:alerted"])
        #expect(keys.alerts(7) == "prod:alerts:{7}" && keys.frame(camera: 7, requestId: "r1") == "prod:frame:{7}:r1")
        #expect(keys.detection("r1") == "prod:detection:r1", "named by the camera pipeline: unchanged")
        let single = KeySchema(namespace: "prod:")
        #expect(single.latest(7) == "prod:camera:7:latest" && single.alerts(7) == "prod:alerts:7", "single-node mode keeps today's names")
        #expect(keys.allPositionsPattern == "prod:camera:{*}:position" && single.allPositionsPattern == "prod:camera:*:position")
        #expect(keys.announcedCamera(channel: keys.camerasAnnounced, payload: keys.announcement(of: 42)) == 42, "announced and read back")
        #expect(keys.announcedCamera(channel: "other:cameras:new", payload: keys.announcement(of: 42)) == nil, "another namespace's")
        #expect(keys.announcedCamera(channel: keys.camerasAnnounced, payload: Array("4x".utf8)) == nil, "not an id")
    }

    @Test func idsAreReadBackFromEitherForm() {
        let tagged = KeySchema(namespace: "ns:", hashTagged: true)
        #expect(tagged.camera(fromChannel: "ns:camera:{42}") == 42 && tagged.camera(fromChannel: "ns:camera:42") == nil)
        #expect(tagged.camera(fromKey: "ns:camera:{42}:latest", suffix: "latest") == 42 && tagged.camera(fromAlertsKey: "ns:alerts:{42}") == 42)
        #expect(tagged.camera(fromKey: "ns:camera:{}:latest", suffix: "latest") == nil)
        let plain = KeySchema(namespace: "ns:")
        #expect(plain.camera(fromKey: "ns:camera:42:latest", suffix: "latest") == 42 && plain.camera(fromKey: "ns:camera:{42}:latest", suffix: "latest") == nil)
        #expect(plain.camera(fromKey: "ns:camera:42:latest_ts", suffix: "latest") == nil)
    }

    @Test func aNamespaceWithBracesIsRefusedInClusterMode() {
        #expect(KeySchema.clusterProblem(namespace: "prod:") == nil)
        #expect(KeySchema.clusterProblem(namespace: "{prod}:")?.contains("every camera in one slot") == true)
        #expect(KeySchema.clusterProblem(namespace: "a}b") != nil)
    }
}

import Testing
import TestSupport
@testable import RedisClient

/// Server error replies are classified once, by their first word, and matched by case.
@Suite struct RedisErrorTests {
    @Test func everyKnownCodeWordHasItsCaseAndBack() {
        let known: [(String, RedisError.ServerCode)] = [
            ("ERR", .err), ("WRONGTYPE", .wrongType), ("NOSCRIPT", .noScript), ("BUSYGROUP", .busyGroup), ("NOGROUP", .noGroup),
            ("UNBLOCKED", .unblocked), ("BUSY", .busy), ("BUSYKEY", .busyKey), ("READONLY", .readOnly), ("LOADING", .loading),
            ("NOREPLICAS", .noReplicas), ("MASTERDOWN", .masterDown), ("MOVED", .moved), ("ASK", .ask), ("TRYAGAIN", .tryAgain),
            ("CLUSTERDOWN", .clusterDown), ("CROSSSLOT", .crossSlot), ("NOAUTH", .noAuth), ("WRONGPASS", .wrongPass),
            ("NOPERM", .noPerm), ("EXECABORT", .execAbort), ("MISCONF", .misconfigured), ("OOM", .outOfMemory),
        ]
        for (word, code) in known {
            #expect(RedisError.ServerCode(errorReply: "\(word) some detail") == code, "\(word)")
            #expect(RedisError.ServerCode(errorReply: word) == code, "\(word) alone")
            #expect(code.word == word)
        }
        #expect(Set(known.map(\.1)).count == known.count, "one case per word")
    }

    @Test func wordsThatOnlyStartLikeACodeAreOtherCodes() {
        // BUSYGROUP is not BUSY, ERRORS is not ERR; the code is the whole first word, case and all.
        #expect(RedisError.ServerCode(errorReply: "BUSYGROUP Consumer Group name already exists") == .busyGroup)
        #expect(RedisError.ServerCode(errorReply: "ERRORS happen") == .other("ERRORS"))
        #expect(RedisError.ServerCode(errorReply: "err lower case") == .other("err"))
        #expect(RedisError.ServerCode(errorReply: "") == .other(""))
        #expect(RedisError.ServerCode(errorReply: "MYAPP custom failure").word == "MYAPP")
    }

    @Test func theCodeIsParsedForServerErrorsOnly() {
        let server = RedisError(kind: .server, message: "NOGROUP No such key 'k' or consumer group 'g'", command: "XREADGROUP")
        #expect(server.serverCode == .noGroup)
        // A message that happens to start with a code word says nothing for other kinds.
        #expect(RedisError(kind: .connectionLost, message: "READONLY connection closed").serverCode == nil)
        #expect(RedisError(kind: .protocol, message: "ERR bad bytes").serverCode == nil)
    }

    @Test func transientServerCodesAreTheNotNowOnes() {
        for message in ["LOADING Redis is loading the dataset in memory", "BUSY Redis is busy running a script",
                        "TRYAGAIN Multiple keys request during rehashing", "READONLY You can't write against a read only replica.",
                        "MOVED 3999 127.0.0.1:6381", "CLUSTERDOWN The cluster is down",
                        "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)"] {
            #expect(RedisError(kind: .server, message: message).isTransient, "\(message)")
        }
        for message in ["BUSYGROUP Consumer Group name already exists", "WRONGTYPE Operation against a key", "ERR unknown command", "NOSCRIPT No matching script",
                        "CROSSSLOT Keys in request don't hash to the same slot"] {
            #expect(!RedisError(kind: .server, message: message).isTransient, "\(message)")
        }
    }

    @Test func aTransactionConflictIsTheClientsOwnTransientVerdict() {
        let conflict = RedisError(kind: .transactionConflict, message: "watched keys kept changing during 32 attempts", command: "EXEC")
        #expect(conflict.serverCode == nil, "not a server reply")
        #expect(conflict.isTransient)
        #expect(conflict.description.contains("transactionConflict") && conflict.description.contains("retry"))
        #expect(RedisError(kind: .resourceUnavailable, message: "pipe(2): Too many open files").isTransient)
    }

    @Test func aRealServersRepliesAreClassified() async throws {
        let server = try await RedisServer()
        let client = try await RedisClient.connect(configuration: server.configuration)
        let stream = uniqueName("codes"), list = uniqueName("list")
        try await client.send(.xgroupCreate(stream, group: "g", id: "0"))
        await #expect { try await client.send(.xgroupCreate(stream, group: "g", id: "0")) } throws: { error in
            let e = error as! RedisError
            return e.serverCode == .busyGroup && e.command == "XGROUP"
        }
        await #expect { _ = try await client.send(.xreadgroup(group: "nosuchgroup", consumer: "c", stream: stream)) } throws: {
            ($0 as! RedisError).serverCode == .noGroup
        }
        _ = try await client.send(.lpush(list, [[1]]))
        await #expect { _ = try await client.send(.hget(list, field: "f")) } throws: { ($0 as! RedisError).serverCode == .wrongType }
        await #expect { _ = try await client.send(RedisScript.evalsha(sha: String(repeating: "0", count: 40), keys: [], arguments: [])) } throws: {
            ($0 as! RedisError).serverCode == .noScript
        }
        await #expect { _ = try await client.send(.raw(["NOSUCHCOMMAND"])) } throws: { ($0 as! RedisError).serverCode == .err }
    }
}

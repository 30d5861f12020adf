import Foundation
import Testing
import TestSupport
@testable import ProcessSpawn
#if canImport(Glibc)
import Glibc
#endif

/// The one child-process type: start, output, waiting without polling, stopping by its own pid.
@Suite struct ChildProcessTests {
    @Test func theExitCodeIsTheStatusAndTheChildIsReaped() async throws {
        let child = try ChildProcess("/bin/sh", ["-c", "exit 3"])
        #expect(await child.wait() == 3)
        #expect(child.exitStatus == 3 && !child.isRunning)
        #expect(await child.wait() == 3, "a later wait returns at once")
        errno = 0
        #expect(waitpid(child.pid, nil, WNOHANG) == -1 && errno == ECHILD, "no zombie is left")
        #expect(!child.signal(SIGTERM), "a reaped child's pid is never signalled again")
    }

    @Test func aSignalThatEndsTheChildIs128PlusItsNumber() async throws {
        let child = try ChildProcess("/bin/sleep", ["60"])
        #expect(child.isRunning && child.exitStatus == nil)
        #expect(child.signal(SIGKILL))
        #expect(await child.wait() == 128 + SIGKILL)
        let terminated = try ChildProcess("/bin/sleep", ["60"])
        terminated.signal(SIGTERM)
        #expect(await terminated.wait() == 128 + SIGTERM)
    }

    @Test func outputArrivesLineByLineAndTheLastLineWithoutANewlineToo() async throws {
        let lines = Collector<String>()
        let child = try ChildProcess("/bin/sh", ["-c", #"printf 'one\ntwo\n\n'; echo err >&2; printf 'last'"#], output: .lines { lines.append($0) })
        #expect(await child.wait() == 0)
        // The end comes after the output's end: every line is there once wait() returns.
        #expect(lines.values == ["one", "two", "", "err", "last"])
    }

    @Test func stdoutAndStderrCanBeCapturedApartWhileInputIsFed() async throws {
        let big = (0..<20_000).map { "line \($0)\n" }.joined() // far more than a pipe holds
        let child = try ChildProcess("/bin/sh", ["-c", "cat; echo done >&2"], input: .bytes(Array(big.utf8)), output: .capture, errors: .separate(.capture))
        #expect(await child.wait() == 0)
        #expect(child.captured.stdout == Array(big.utf8))
        #expect(child.captured.stderr == Array("done\n".utf8))
    }

    @Test func aChildThatReadsNoInputEndsWithoutAPipeSignalHere() async throws {
        let child = try ChildProcess("/bin/sh", ["-c", "exit 0"], input: .bytes([UInt8](repeating: 65, count: 1 << 20)))
        #expect(await child.wait() == 0) // this process is still alive: SIGPIPE was blocked where input is written
    }

    @Test func outputAppendsToAFileAndLinesOfSeparateStreamsStayApart() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("child")).path
        defer { try? FileManager.default.removeItem(atPath: path) } // try?: a temporary file left behind is harmless
        for word in ["first", "second"] {
            let child = try ChildProcess("/bin/sh", ["-c", "echo \(word); echo \(word)-err >&2"], output: .appendToFile(path))
            #expect(await child.wait() == 0)
        }
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "first\nfirst-err\nsecond\nsecond-err\n")

        let out = Collector<String>(), err = Collector<String>()
        let child = try ChildProcess("/bin/sh", ["-c", "echo a; echo b >&2; echo c"], output: .lines { out.append($0) }, errors: .separate(.lines { err.append($0) }))
        #expect(await child.wait() == 0)
        #expect(out.values == ["a", "c"] && err.values == ["b"])
    }

    @Test func aWaitWithATimeoutThrowsWhileTheChildRunsOn() async throws {
        let child = try ChildProcess("/bin/sleep", ["60"])
        await #expect { _ = try await child.wait(timeout: .milliseconds(50)) } throws: { error in
            let e = error as! ChildProcessError
            return e.kind == .timedOut && e.pid == child.pid && e.description.contains("did not end within")
        }
        #expect(child.isRunning && child.waiting == 0, "the timed-out wait left nothing behind")
        child.signal(SIGKILL)
        #expect(try await child.wait(timeout: .seconds(30)) == 128 + SIGKILL)
    }

    @Test func aCancelledWaitThrowsCancelled() async throws {
        let child = try ChildProcess("/bin/sleep", ["60"])
        let waiting = Task { () -> ChildProcessError.Kind? in
            do throws(ChildProcessError) { _ = try await child.wait(timeout: .seconds(600)); return nil } catch { return error.kind }
        }
        try await waitUntil("the wait is registered") { child.waiting == 1 }
        waiting.cancel()
        #expect(await waiting.value == .cancelled)
        #expect(child.waiting == 0)
        child.signal(SIGKILL)
        _ = await child.wait()
    }

    @Test func manyWaitersAreResumedByOneEnd() async throws {
        let child = try ChildProcess("/bin/sleep", ["60"])
        try await withThrowingTaskGroup(of: Int32.self) { group in
            for index in 0..<200 {
                group.addTask { index.isMultiple(of: 2) ? await child.wait() : try await child.wait(timeout: .seconds(60)) }
            }
            try await waitUntil("all 200 waits are suspended") { child.waiting == 200 }
            child.signal(SIGTERM)
            var statuses: [Int32] = []
            for try await status in group { statuses.append(status) }
            #expect(statuses.count == 200 && statuses.allSatisfy { $0 == 128 + SIGTERM })
        }
        #expect(child.waiting == 0)
    }

    @Test func terminateSendsSIGTERMAndSIGKILLAfterTheGrace() async throws {
        let polite = try ChildProcess("/bin/sleep", ["60"])
        polite.terminate(grace: .seconds(30))
        #expect(await polite.wait() == 128 + SIGTERM)

        // This one ignores SIGTERM (once it said so): the grace runs out, SIGKILL ends it.
        let ready = Collector<String>()
        let stubborn = try ChildProcess("/bin/sh", ["-c", "trap '' TERM; echo ready; while :; do sleep 0.05; done"], output: .lines { ready.append($0) })
        try await waitUntil("the trap is set") { ready.values.contains("ready") }
        stubborn.terminate(grace: .milliseconds(100))
        #expect(try await stubborn.wait(timeout: .seconds(30)) == 128 + SIGKILL)
        polite.terminate() // ended already: nothing is sent
    }

    @Test func aChildDroppedWhileRunningIsKilledAndReaped() async throws {
        var child: ChildProcess? = try ChildProcess("/bin/sleep", ["60"])
        let pid = try #require(child?.pid)
        child = nil
        // Killed, then reaped by its thread: the pid is gone (a zombie would still answer kill 0).
        try await waitUntil("pid \(pid) is gone") { kill(pid, 0) == -1 && errno == ESRCH }
    }

    @Test func aProgramIsFoundOnPATHAndAMissingOneIsAClearError() async throws {
        let found = try ChildProcess("sh", ["-c", "exit 5"], searchPath: true)
        #expect(await found.wait() == 5)
        #expect { try ChildProcess("/no/such/program", []) } throws: { error in
            let e = error as! ChildProcessError
            return e.kind == .cannotStart && e.cause?.code == ENOENT && e.code == ENOENT && e.description.contains("/no/such/program")
        }
        #expect { try ChildProcess("no-such-program-\(UUID().uuidString.prefix(8))", [], searchPath: true) } throws: {
            ($0 as! ChildProcessError).kind == .cannotStart
        }
    }

    @Test func onlyTheStandardDescriptorsAreInherited() async throws {
        let lines = Collector<String>()
        let child = try ChildProcess("/bin/ls", ["/proc/self/fd"], output: .lines { lines.append($0) })
        #expect(await child.wait() == 0)
        #expect(Set(lines.values) == ["0", "1", "2", "3"], "0–2 and the directory ls itself opened: \(lines.values)")
    }
}

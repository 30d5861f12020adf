import Foundation
import RedisClient
import Testing
import TestSupport
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool

/// The grid-search pool as operators run it: real `traffic-experiment` processes (grid,
/// worker --pool, results) against a real redis-server, with workers killed, stopped and Redis
/// restarted under them.
@Suite(.serialized) struct PoolProcessTests {
    // One test at a time: each runs several CPU-bound worker processes, and the suite shares two
    // cores with every other suite.

    /// 32 tasks: rf 4 sets (two of them slower, ~0.2 s per fold in a debug build), svr 3, lr 1; 4 folds.
    static let grid = #"{"rf": {"n_estimators": [20, 500], "max_depth": [null, 6], "n_jobs": [1]}, "svr": {"C": [0.5, 1, 2]}, "lr": {}}"#

    /// A pool on a test Redis: its prefix, clients and the tool's processes.
    struct Pool {
        let server: RedisServer
        let keys: PoolKeys
        let redis: RedisClient

        init(server: RedisServer) async throws {
            self.server = server
            keys = PoolKeys(prefix: uniqueName("pool"))
            redis = try await RedisClient.connect(configuration: server.configuration)
        }

        var common: [String] { ["--redis-url", server.url, "--pool-prefix", keys.prefix] }

        /// `grid` with `grid` as the grid file; returns the job id.
        func createJob(_ grid: String = PoolProcessTests.grid, folds: Int = 4, priority: String = "normal") async throws -> String {
            let file = Fixtures.temporaryCSV(grid, name: "grid.json")
            let (status, output) = try await ExperimentProcessTests.run(["grid", "--csv", Fixtures.path("friedman_small.csv"), "--grid", file, "--folds", String(folds),
                                                                         "--priority", priority, "--quiet"] + common)
            #expect(status == 0, "\(output)")
            return output.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// A `worker --pool` process (short idle timeout and heartbeat, so a dead worker's task
        /// is taken over within seconds).
        func worker(_ name: String, extra: [String] = [], log: String = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("pool-worker") + ".log").path) throws -> ChildProcess {
            // Niced: the CPU-bound workers must not starve the other suites' servers and clients.
            return try ChildProcess("/usr/bin/nice", ["-n", "10", ExperimentProcessTests.binary, "worker", "--pool", "--name", name, "--idle-timeout", "2", "--heartbeat", "0.5"] + extra + common,
                                    output: .appendToFile(log))
        }

        func store() -> JobStore { JobStore(keys: keys) }

        /// Stops workers (SIGTERM, SIGKILL after 10 s) without blocking a thread.
        func stop(_ workers: [ChildProcess]) async {
            for worker in workers where worker.isRunning { worker.signal(SIGTERM) }
            for worker in workers where (try? await worker.wait(timeout: .seconds(10))) == nil { // try?: past the grace, SIGKILL
                worker.signal(SIGKILL)
                _ = try? await worker.wait(timeout: .seconds(5)) // try?: a stuck child is reported by its test's own checks
            }
        }

        /// Waits for the job's end; a timeout names the tasks that had not ended.
        func waitUntilFinished(_ job: String, timeout: Duration = .seconds(180)) async throws {
            do {
                try await waitUntil("job \(job) finishes", timeout: timeout, every: .milliseconds(50)) {
                    (try? await store().counts(job: job, on: redis))?.isFinished ?? false // try?: Redis may be restarting, an error is "not yet"
                }
            } catch {
                let open = (try? await store().states(job: job, on: redis))?.filter { !$0.value.state.isFinal } // try?: only for the message
                throw LocalServiceError("\(error); tasks not ended: \(open.map { "\($0)" } ?? "unreadable")")
            }
        }

        /// Makes everything written so far survive a SIGKILL of Redis: with `appendfsync
        /// everysec` a killed server may lose the last second or two of acknowledged writes
        /// (Redis's documented bound), and a job whose creation is lost cannot complete. An AOF
        /// rewrite holds the whole data set, fsynced.
        func makeDurable() async throws {
            func persistence() async throws -> [String: String] {
                let text = try await redis.send(.raw(["INFO", "persistence"])).string ?? ""
                return Dictionary(text.split(whereSeparator: \.isNewline).compactMap { line in
                    let parts = line.split(separator: ":", maxSplits: 1)
                    return parts.count == 2 ? (String(parts[0]), String(parts[1])) : nil
                }, uniquingKeysWith: { $1 })
            }
            func idle(_ info: [String: String]) -> Bool { info["aof_rewrite_in_progress"] == "0" && info["aof_rewrite_scheduled"] == "0" }
            while true {
                try await waitUntil("no AOF rewrite runs", timeout: .seconds(60)) { idle(try await persistence()) }
                let before = Int(try await persistence()["aof_rewrites"] ?? "") ?? 0
                do { _ = try await redis.send(.raw(["BGREWRITEAOF"])) } catch { continue } // one started meanwhile: wait for it, then ours
                try await waitUntil("the AOF rewrite ends", timeout: .seconds(60)) {
                    let info = try await persistence()
                    return idle(info) && (Int(info["aof_rewrites"] ?? "") ?? 0) > before
                }
                #expect(try await persistence()["aof_last_bgrewrite_status"] == "ok")
                return
            }
        }

        /// The registry entry of a worker, if it is registered.
        func registry(_ name: String) async throws -> PoolSnapshot.WorkerInfo? {
            try await redis.send(.get(keys.worker(name))).map { try PoolJSON.decode(PoolSnapshot.WorkerInfo.self, from: $0, "registry entry \(name)") }
        }

        /// `results JOB` into a fresh directory.
        func results(_ job: String, output: String = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("results")).path) async throws -> (status: Int32, text: String, output: String) {
            let (status, text) = try await ExperimentProcessTests.run(["results", job, "--wait", "120", "--output", output] + common)
            return (status, text, output)
        }
    }

    @Test func threeWorkersOneKilledMidTaskEveryTaskIsDoneOnceAndTheRankingEqualsASingleWorkers() async throws {
        let server = try await RedisServer()
        let pool = try await Pool(server: server), reference = try await Pool(server: server)
        let (subscriber, events) = RedisSubscriber.makeStream(configuration: server.configuration)
        try await subscriber.subscribe([pool.keys.events])
        let doneEvents = TestSupport.Collector<String>()
        let listener = Task {
            for await event in events {
                guard case .message(let message) = event, let decoded = try? JSONDecoder().decode(PoolEvent.self, from: Data(message.payload)) else { continue } // try?: only pool events are counted
                if let task = decoded.task(in: .done) { doneEvents.append(task) }
            }
        }
        let job = try await pool.createJob()
        let referenceJob = try await reference.createJob()
        #expect(try await pool.store().counts(job: job, on: pool.redis).tasks == 32)

        let workers = try ["w0", "w1", "w2"].map { try pool.worker($0) }
        let solo = try reference.worker("solo")
        // Kill one worker in the middle of a slow task: frozen first (SIGSTOP), so the task it
        // runs is known to be unfinished when the SIGKILL lands.
        var victim: (name: String, task: String)?
        try await waitUntil("a worker is frozen in a slow rf task", timeout: .seconds(120), every: .milliseconds(5)) {
            for (index, name) in ["w0", "w1", "w2"].enumerated() {
                // Named in the registry, and started in the task's state (the registry names a
                // task a moment before its start is recorded).
                guard let task = try await pool.registry(name)?.currentTask, task.contains("/rf-2-") || task.contains("/rf-3-") else { continue }
                let id = String(task.split(separator: "/").last ?? "")
                workers[index].signal(SIGSTOP)
                let record = try await pool.store().record(job: job, task: id, on: pool.redis)
                if record?.state == .running, record?.worker == name {
                    victim = (name, id)
                    return true
                }
                workers[index].signal(SIGCONT) // it finished meanwhile: try again
            }
            return false
        }
        let (victimName, victimTask) = try #require(victim)
        workers[["w0", "w1", "w2"].firstIndex(of: victimName)!].signal(SIGKILL)

        try await pool.waitUntilFinished(job)
        try await reference.waitUntilFinished(referenceJob)
        let states = try await pool.store().states(job: job, on: pool.redis)
        #expect(states.count == 32 && states.values.allSatisfy { $0.state == .done }, "\(states.filter { $0.value.state != .done })")
        #expect(states[victimTask]?.attempts == 2 && states[victimTask]?.worker != victimName, "the killed worker's task was taken over: \(String(describing: states[victimTask]))")
        #expect(try await pool.redis.send(.hgetall(pool.keys.results(job))).count == 32)
        try await waitUntil("every done event arrived", timeout: .seconds(10)) { doneEvents.count >= 32 }
        #expect(doneEvents.count == 32 && Set(doneEvents.values).count == 32, "each task announced done exactly once")

        let (status, text, output) = try await pool.results(job)
        #expect(status == 0, "\(text)")
        let (referenceStatus, referenceText, referenceOutput) = try await reference.results(referenceJob)
        #expect(referenceStatus == 0, "\(referenceText)")
        let ranked = try GridResults.decode(Data(contentsOf: URL(fileURLWithPath: output + "/grid_\(job)_results.json")))
        let single = try GridResults.decode(Data(contentsOf: URL(fileURLWithPath: referenceOutput + "/grid_\(referenceJob)_results.json")))
        #expect(ranked.ranking.count == 8)
        #expect(ranked.ranking.map(\.label) == single.ranking.map(\.label), "the same order")
        #expect(zip(ranked.ranking, single.ranking).allSatisfy { $0.meanR2 == $1.meanR2 && $0.stdR2 == $1.stdR2 && $0.foldR2 == $1.foldR2 }, "the same scores")
        #expect(FileManager.default.fileExists(atPath: output + "/grid_\(job)_report.html"))

        await pool.stop(workers + [solo])
        listener.cancel()
        await subscriber.close()
        await pool.redis.close(); await reference.redis.close()
        server.stop()
    }

    @Test func aTaskThatAlwaysThrowsFailsAfterThreeAttemptsWhileTheOthersFinish() async throws {
        let server = try await RedisServer()
        let pool = try await Pool(server: server)
        let job = try await pool.createJob(#"{"lr": {}, "svr": {"C": [1]}}"#, folds: 3)
        // A task that can never succeed: its fold does not exist.
        let broken = GridTask(id: "lr-0-99", algorithm: "lr", parameters: [:], parameterSet: 0, fold: 99)
        _ = try await pool.redis.send(.hset(pool.keys.taskStates(job), [(broken.id, try PoolJSON.encode(TaskRecord(), "test value"))]))
        _ = try await pool.redis.send(.raw(["HINCRBY", pool.keys.job(job), "tasks", "1"]))
        _ = try await pool.redis.send(.raw(["HINCRBY", pool.keys.job(job), "queued", "1"]))
        _ = try await pool.redis.send(.xadd(pool.keys.tasks(.normal), fields: [RedisStreamField("job", job), RedisStreamField("task", try PoolJSON.encode(broken, "test value"))]))
        let workers = try [pool.worker("a"), pool.worker("b")]
        try await pool.waitUntilFinished(job, timeout: .seconds(60))
        let states = try await pool.store().states(job: job, on: pool.redis)
        #expect(states[broken.id]?.state == .failed && states[broken.id]?.attempts == 3 && states[broken.id]?.lastError?.contains("fold 99") == true)
        #expect(states.values.filter { $0.state == .done }.count == 6, "the job went on")
        let (status, text, _) = try await pool.results(job)
        #expect(status == 0 && text.contains("6 done, 1 failed") && text.contains("failed: lr-0-99 after 3 attempts"), "\(text)")
        // `status` (not a terminal: JSON) shows the job's counts and both live workers. A worker
        // starved of CPU on a busy machine may miss its registry's TTL for a moment: asked again
        // until both are listed.
        var snapshot: PoolSnapshot?
        try await waitUntil("status lists both live workers", timeout: .seconds(60), every: .milliseconds(500)) {
            let (statusCode, json) = try await ExperimentProcessTests.run(["status", job] + pool.common)
            #expect(statusCode == 0, "\(json)")
            snapshot = try JSONDecoder().decode(PoolSnapshot.self, from: Data(json.utf8))
            return Set(snapshot?.workers.map(\.name) ?? []) == ["a", "b"]
        }
        let shown = try #require(snapshot)
        #expect(shown.jobs.map(\.id) == [job] && shown.jobs[0].counts.done == 6 && shown.jobs[0].counts.failed == 1 && shown.jobs[0].finalised)
        #expect(shown.workers.allSatisfy { $0.currentTask == nil }, "\(shown.workers)")
        #expect(shown.workers.map(\.tasksDone).reduce(0, +) == 6)
        await pool.stop(workers)
        await pool.redis.close()
        server.stop()
    }

    @Test func highPriorityJobsGoFirstAndTheRacingFinalisersWriteOneResult() async throws {
        let server = try await RedisServer()
        let pool = try await Pool(server: server)
        let grid = #"{"lr": {}, "svr": {"C": [0.5, 1]}}"#
        let normal = try await pool.createJob(grid, folds: 3, priority: "normal")
        let high = try await pool.createJob(grid, folds: 3, priority: "high")
        // Two finalisers of the normal job, each with its own output directory, started before
        // any work: both wait (`--wait`) and both wake on the job's completion event, so they
        // race for the lock.
        async let first = pool.results(normal)
        async let second = pool.results(normal)
        let worker = try pool.worker("solo")
        try await pool.waitUntilFinished(high, timeout: .seconds(60))
        try await pool.waitUntilFinished(normal, timeout: .seconds(60))
        let highStarts = try await pool.store().states(job: high, on: pool.redis).values.compactMap(\.startedAt)
        let normalStarts = try await pool.store().states(job: normal, on: pool.redis).values.compactMap(\.startedAt)
        #expect(highStarts.count == 9 && normalStarts.count == 9)
        #expect(highStarts.max()! <= normalStarts.min()!, "every high-priority task started before any normal one")
        await pool.stop([worker])

        // One of them wrote.
        let outcomes = try await [first, second]
        #expect(outcomes.allSatisfy { $0.status == 0 }, "\(outcomes.map(\.text))")
        let wrote = outcomes.filter { FileManager.default.fileExists(atPath: $0.output + "/grid_\(normal)_results.json") }
        #expect(wrote.count == 1, "exactly one result file: \(outcomes.map(\.text))")
        #expect(outcomes.filter { $0.text.contains("finalised here") }.count == 1 && outcomes.filter { $0.text.contains("was finalised by") }.count == 1)
        await pool.redis.close()
        server.stop()
    }

    @Test func sigtermHandsTheRunningTaskBackAndAnotherWorkerTakesIt() async throws {
        let server = try await RedisServer()
        let pool = try await Pool(server: server)
        // Long tasks (tens of seconds), so the signal surely meets one running.
        let job = try await pool.createJob(#"{"rf": {"n_estimators": [50000], "n_jobs": [1]}}"#, folds: 2)
        let leaving = try pool.worker("leaving", extra: ["--stop-grace", "0"])
        var task: String?
        try await waitUntil("the worker runs a task", timeout: .seconds(60), every: .milliseconds(5)) {
            task = try await pool.registry("leaving")?.currentTask
            return task != nil
        }
        let handed = try #require(task?.split(separator: "/").last.map(String.init))
        leaving.signal(SIGTERM)
        #expect(try await leaving.wait(timeout: .seconds(30)) == 0)
        #expect(try await pool.registry("leaving") == nil, "deregistered")
        let record = try await pool.store().states(job: job, on: pool.redis)[handed]
        #expect(record?.state == .queued && record?.attempts == 0 && record?.worker == nil, "handed back: \(String(describing: record))")
        let counts = try await pool.store().counts(job: job, on: pool.redis)
        #expect(counts.queued == 2 && counts.running == 0, "\(counts)")
        // Back in the stream: another worker takes it (both tasks, in some order).
        let next = try pool.worker("next", extra: ["--concurrency", "2", "--threads", "1"])
        try await waitUntil("another worker runs the handed-back task", timeout: .seconds(60), every: .milliseconds(20)) {
            try await pool.store().states(job: job, on: pool.redis)[handed]?.worker?.hasPrefix("next") == true
        }
        let taken = try await pool.store().states(job: job, on: pool.redis)[handed]
        #expect(taken?.state == .running && taken?.attempts == 1)
        next.signal(SIGKILL)
        _ = try await next.wait(timeout: .seconds(10))
        await pool.redis.close()
        server.stop()
    }

    @Test func aJobCompletesAcrossARedisRestartWithAppendOnlyFile() async throws {
        let server = try await RedisServer(extraArguments: ["--appendonly", "yes", "--appendfsync", "everysec"])
        let pool = try await Pool(server: server)
        let job = try await pool.createJob(#"{"rf": {"n_estimators": [200, 400], "n_jobs": [1]}, "lr": {}}"#, folds: 5)
        // The job must outlive the crash; what the workers wrote since is theirs to recover.
        try await pool.makeDurable()
        let workers = try [pool.worker("a"), pool.worker("b")]
        try await waitUntil("some tasks are done", timeout: .seconds(60), every: .milliseconds(20)) {
            try await pool.store().counts(job: job, on: pool.redis).done >= 2
        }
        let before = try await pool.store().counts(job: job, on: pool.redis)
        server.kill()
        #expect(!before.isFinished, "restarted mid-job: \(before)")
        try await server.start()
        // Checked once tasks are done again after the restart, while tasks are left: at the job's
        // end a worker idle for `--idle-timeout` (2 s) may already have left, as it should.
        try await waitUntil("tasks done after the restart", timeout: .seconds(120), every: .milliseconds(20)) {
            let now = try? await pool.store().counts(job: job, on: pool.redis) // try?: not answering yet is not yet
            return (now?.done ?? 0) > before.done
        }
        let allRunning = workers.allSatisfy { $0.isRunning }
        #expect(allRunning, "the workers waited for Redis instead of exiting")
        try await pool.waitUntilFinished(job, timeout: .seconds(120))
        let states = try await pool.store().states(job: job, on: pool.redis)
        #expect(states.count == 15 && states.values.allSatisfy { $0.state == .done }, "\(states.filter { $0.value.state != .done })")
        #expect(try await pool.redis.send(.hgetall(pool.keys.results(job))).count == 15)
        let (status, text, _) = try await pool.results(job)
        #expect(status == 0 && text.contains("15 done, 0 failed"), "\(text)")
        await pool.stop(workers)
        await pool.redis.close()
        server.stop()
    }

    /// A worker started while Redis is away waits for it (as it does for an outage later) and
    /// then takes the job's tasks, instead of exiting at its first connect.
    @Test func aWorkerStartedWhileRedisIsAwayWaitsForIt() async throws {
        let server = try await RedisServer()
        let pool = try await Pool(server: server)
        server.kill()
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("pool-late") + ".log").path
        let worker = try pool.worker("late", log: log)
        try await waitUntil("the worker says it waits for Redis", timeout: .seconds(60), every: .milliseconds(20)) {
            ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").contains("waiting for it") // try?: no output yet
        }
        #expect(worker.isRunning, "still there while Redis is away")
        try await server.start()
        let job = try await pool.createJob(#"{"lr": {}}"#, folds: 2)
        try await pool.waitUntilFinished(job, timeout: .seconds(120))
        #expect(worker.isRunning)
        await pool.stop([worker])
        await pool.redis.close()
        server.stop()
    }

    /// A live worker touches its running delivery every beat, so however long its task runs,
    /// another worker's XAUTOCLAIM never takes it: the pending owner of each delivery stays its
    /// runner throughout. (Worker processes: in the test process, other suites' work can starve
    /// a worker's beats for seconds.)
    @Test func aLongTaskOfALiveWorkerIsNeverClaimedAway() async throws {
        let server = try await RedisServer()
        let pool = try await Pool(server: server)
        // Two slow tasks (a large forest on one thread each), one per runner.
        let job = try await pool.createJob(#"{"rf": {"n_estimators": [12000], "n_jobs": [1]}}"#, folds: 2)
        // Idle timeout 0.3 s: they touch their deliveries every 0.1 s.
        let runners = try ["runner-a", "runner-b"].map { try pool.worker($0, extra: ["--idle-timeout", "0.3"]) }
        try await waitUntil("both runners hold a task", timeout: .seconds(60), every: .milliseconds(20)) {
            try await pool.store().counts(job: job, on: pool.redis).running == 2
        }
        // Another worker joins with nothing left to take: it claims deliveries idle 1 s (ten
        // beats) and scans for them every second while the long tasks go on.
        let other = try pool.worker("other", extra: ["--idle-timeout", "1"])
        var owners: Set<String> = []
        try await waitUntil("the job finishes", timeout: .seconds(300), every: .milliseconds(50)) {
            for owner in try await PoolReclaimTests.pendingOwners(pool.redis, pool.keys).values { owners.insert(owner) }
            return try await pool.store().counts(job: job, on: pool.redis).isFinished
        }
        let states = try await pool.store().states(job: job, on: pool.redis)
        #expect(states.values.allSatisfy { $0.state == .done && $0.attempts == 1 && $0.worker?.hasPrefix("runner") == true }, "each task ran once, by its runner: \(states)")
        let shortest = states.values.map { ($0.finishedAt ?? 0) - ($0.startedAt ?? 0) }.min() ?? 0
        #expect(shortest > 2, "precondition: the tasks outlast the other's idle timeout twice over (\(shortest) s)")
        #expect(owners == ["runner-a", "runner-b"], "only the runners ever held a delivery: \(owners)")
        await pool.stop(runners + [other])
        await pool.redis.close()
        server.stop()
    }

    /// `status JOB` on a terminal (a pseudo-terminal from util-linux's `script`): a live table
    /// redrawn on the job's events that ends when the job does. Its timer is set to 60 s, so a
    /// redraw and an exit within 30 s of the job's end can only come from an event.
    @Test func statusOnATerminalRedrawsOnTheJobsEventsUntilItFinishes() async throws {
        let server = try await RedisServer()
        let pool = try await Pool(server: server)
        let job = try await pool.createJob(#"{"svr": {"C": [0.5, 1, 2]}, "lr": {}}"#, folds: 3)
        let log = FileManager.default.temporaryDirectory.appendingPathComponent(uniqueName("status-tty") + ".log").path
        let command = ([ExperimentProcessTests.binary, "status", job, "--interval", "60"] + pool.common).map { "'\($0)'" }.joined(separator: " ")
        let status = try ChildProcess("/usr/bin/script", ["-qfec", command, "/dev/null"], output: .appendToFile(log))
        func screen() -> String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" } // try?: nothing drawn yet
        try await waitUntil("the first table is drawn", timeout: .seconds(30)) { screen().contains("JOBS (1)") }
        let worker = try pool.worker("solo")
        try await pool.waitUntilFinished(job, timeout: .seconds(60))
        #expect(try await status.wait(timeout: .seconds(30)) == 0, "status ends with the job: \(screen().suffix(2000))")
        let text = screen()
        let redraws = text.components(separatedBy: "\u{1B}[H\u{1B}[2J").count - 1
        #expect(redraws >= 2, "drawn at start and redrawn on events: \(redraws) redraws")
        let last = text.components(separatedBy: "\u{1B}[H\u{1B}[2J").last ?? ""
        #expect(last.contains(job) && last.contains("100%") && last.contains("WORKERS"), "the final table shows the job finished: \(last)")
        await pool.stop([worker])
        await pool.redis.close()
        server.stop()
    }

    @Test func optionsOfTheOtherWorkerModeAreRefused() async throws {
        let (pool, poolText) = try await ExperimentProcessTests.run(["worker", "--pool", "--seed", "5"])
        #expect(pool != 0 && poolText.contains("--seed does not apply to --pool"), "\(poolText)")
        let (single, singleText) = try await ExperimentProcessTests.run(["worker", "--algorithm", "lr", "--concurrency=4"])
        #expect(single != 0 && singleText.contains("--concurrency applies only with --pool"), "\(singleText)")
        let (neither, neitherText) = try await ExperimentProcessTests.run(["worker"])
        #expect(neither != 0 && neitherText.contains("or join the grid-search pool with --pool"), "\(neitherText)")
    }

    @Test func aBadGridFileIsRefusedWithItsLineBeforeAnythingIsWritten() async throws {
        let server = try await RedisServer()
        let pool = try await Pool(server: server)
        let file = Fixtures.temporaryCSV("{\n  \"rf\": {\"n_estimators\": [10]},\n  \"svr\": {\"C\": [0.5, -1]}\n}\n", name: "grid.json")
        let (status, text) = try await ExperimentProcessTests.run(["grid", "--csv", Fixtures.path("friedman_small.csv"), "--grid", file] + pool.common)
        #expect(status == 1 && text.contains("grid.json:3: svr: C=-1"), "\(text)")
        let keys = try await pool.redis.send(.scan(cursor: 0, match: pool.keys.prefix + "*", count: 1000)).keys
        #expect(keys.isEmpty, "nothing written: \(keys)")
        await pool.redis.close()
        server.stop()
    }
}

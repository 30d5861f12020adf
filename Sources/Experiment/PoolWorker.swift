import Foundation
import RedisClient

/// One member of a worker pool: takes grid tasks from the shared consumer group (high-priority
/// tasks first), trains the task's algorithm on its fold, writes the result once under the task's
/// id, records the task's state and acknowledges it. A task that throws is queued again until
/// its attempts are used up, then failed with its error; the job goes on.
public struct PoolWorker: Sendable {
    public var keys: PoolKeys
    public var name: String
    public var store: JobStore
    /// How long one read waits for a normal-priority task.
    public var block: Duration = .milliseconds(200)

    public init(keys: PoolKeys, name: String) {
        self.keys = keys
        self.name = name
        store = JobStore(keys: keys)
    }

    /// A loaded job: its data set and folds.
    struct LoadedJob: Sendable {
        var features: Matrix
        var targets: [Double]
        var folds: KFold
    }

    /// Takes and runs tasks until `stop()` says so; returns how many tasks it finished.
    public func run(redis: RedisClient, reader: RedisClient, stop: @Sendable () -> Bool) async throws(ExperimentError) -> Int {
        var jobs: [String: LoadedJob] = [:]
        var finished = 0
        while !stop() {
            guard let (stream, entry) = try await next(reader) else { continue }
            guard let job = entry["job"].map({ String(decoding: $0, as: UTF8.self) }),
                  let taskJSON = entry["task"], let task = try? JSONDecoder().decode(GridTask.self, from: Data(taskJSON)) else {
                try await acknowledge(stream, entry.id, on: redis) // not a task of ours: never retried
                continue
            }
            let now = Date().timeIntervalSince1970
            let worker = name
            guard try await store.update(job: job, task: task.id, on: redis, { $0.start($1, worker: worker, now: now) }) != nil else {
                try await acknowledge(stream, entry.id, on: redis) // done or failed already
                continue
            }
            do {
                if jobs[job] == nil { jobs[job] = try await load(job, on: redis) }
                let result = try await Self.evaluate(task, jobs[job]!, worker: name)
                _ = try await redis.send(.raw(["HSETNX", keys.results(job), task.id, String(decoding: JobStore.json(result), as: UTF8.self)]))
                _ = try await store.update(job: job, task: task.id, on: redis) { $0.succeed($1, worker: worker, now: Date().timeIntervalSince1970) }
                finished += 1
                try await acknowledge(stream, entry.id, on: redis)
                try await event(job, task.id, "done", on: redis)
            } catch {
                let message = (error as? ExperimentError)?.message ?? "\(error)"
                let record = try await store.update(job: job, task: task.id, on: redis) { $0.fail($1, worker: worker, error: message, now: Date().timeIntervalSince1970) }
                if record?.state == .queued {
                    // Retried: the task goes to the back of its stream for any worker to take.
                    do { _ = try await redis.send(.xadd(stream, fields: entry.fields)) } catch { throw ExperimentError(.redis, "re-queueing task \(task.id): \(error)") }
                }
                try await acknowledge(stream, entry.id, on: redis)
                try await event(job, task.id, record?.state.rawValue ?? "failed", on: redis)
            }
        }
        return finished
    }

    /// The next task: a high-priority one when any waits, else a normal one (waiting `block`).
    func next(_ reader: RedisClient) async throws(ExperimentError) -> (String, RedisStreamEntry)? {
        for (priority, wait) in [(JobPriority.high, Duration?.none), (.normal, block)] {
            let stream = keys.tasks(priority)
            do {
                if let entry = try await reader.send(.xreadgroup(group: keys.group, consumer: name, stream: stream, count: 1, block: wait)).first {
                    return (stream, entry)
                }
            } catch where error.serverErrorCode == "NOGROUP" {
                do { try await reader.send(.xgroupCreate(stream, group: keys.group, id: "0", makeStream: true)) } catch where error.serverErrorCode == "BUSYGROUP" {} catch {
                    throw ExperimentError(.redis, "joining the pool on \(stream): \(error)")
                }
            } catch {
                throw ExperimentError(.redis, "reading \(stream): \(error)")
            }
        }
        return nil
    }

    func acknowledge(_ stream: String, _ id: String, on redis: RedisClient) async throws(ExperimentError) {
        do { _ = try await redis.send(.xack(stream, group: keys.group, ids: [id])) } catch { throw ExperimentError(.redis, "XACK \(id): \(error)") }
    }

    func event(_ job: String, _ task: String, _ state: String, on redis: RedisClient) async throws(ExperimentError) {
        let text = #"{"job":"\#(job)","task":"\#(task)","state":"\#(state)","worker":\#(StreamFormat.quoted(name))}"#
        do { _ = try await redis.send(.publish(keys.events, Array(text.utf8))) } catch { throw ExperimentError(.redis, "publishing an event: \(error)") }
    }

    /// Reads a job's description and its whole data set (once per job and worker).
    func load(_ job: String, on redis: RedisClient) async throws(ExperimentError) -> LoadedJob {
        let description: [String: [UInt8]]
        do { description = try await redis.send(.hgetall(keys.job(job))) } catch { throw ExperimentError(.redis, "reading job \(job): \(error)") }
        func field(_ name: String) -> String? { description[name].map { String(decoding: $0, as: UTF8.self) } }
        guard let folds = field("folds").flatMap(Int.init), let seed = field("seed").flatMap(UInt64.init), let data = field("data") else {
            throw ExperimentError(.stream, "job \(job) has no usable description (folds, seed, data)")
        }
        var header: StreamFormat.Header?
        var rows: [Int: StreamFormat.Sample] = [:]
        var cursor = "-"
        while true {
            let entries: [RedisStreamEntry]
            do { entries = try await redis.send(.xrange(data, start: cursor, count: 5_000)) } catch { throw ExperimentError(.redis, "reading \(data): \(error)") }
            for entry in entries where entry.id != cursor {
                switch try StreamFormat.decode(entry) {
                case .header(let h): header = h
                case .sample(let s):
                    guard let h = header, s.taskID < h.sampleCount, s.featureValues.count == h.featureNames.count else {
                        throw ExperimentError(.stream, "\(data): entry \(entry.id) does not fit the data set's header")
                    }
                    rows[s.taskID] = s
                }
            }
            guard let last = entries.last, last.id != cursor else { break }
            cursor = last.id
        }
        guard let h = header, rows.count == h.sampleCount else { throw ExperimentError(.stream, "\(data): incomplete data set") }
        let ordered = (0..<h.sampleCount).map { rows[$0]! }
        let matrix = Matrix(rows: h.sampleCount, columns: h.featureNames.count, values: ordered.flatMap(\.featureValues))
        return LoadedJob(features: matrix, targets: ordered.map(\.target), folds: try KFold(rows: h.sampleCount, folds: folds, seed: seed))
    }

    /// One task's result: its fold's test metrics.
    public struct TaskResult: Sendable, Codable, Equatable {
        public var task: String
        public var algorithm: String
        public var parameters: [String: String]
        public var parameterSet: Int
        public var fold: Int
        public var metrics: RegressionMetrics
        public var fitSeconds: Double
        public var worker: String
    }

    static func evaluate(_ task: GridTask, _ job: LoadedJob, worker: String) async throws(ExperimentError) -> TaskResult {
        guard task.fold >= 0, task.fold < job.folds.testRows.count else { throw ExperimentError(.stream, "task \(task.id): fold \(task.fold) does not exist") }
        let regressor = try Regressors.named(task.algorithm).init(parameters: task.parameters)
        let train = job.folds.trainRows(task.fold), test = job.folds.testRows[task.fold]
        let trainX = job.features.rows(train), testX = job.features.rows(test)
        let trainY = train.map { job.targets[$0] }, testY = test.map { job.targets[$0] }
        return try await Worker.onThread { () throws(ExperimentError) -> TaskResult in
            let start = ContinuousClock.now
            let model = try regressor.fit(trainX, trainY)
            let fit = Worker.seconds(ContinuousClock.now - start)
            let metrics = RegressionMetrics(actual: testY, predicted: model.predict(testX))
            return TaskResult(task: task.id, algorithm: task.algorithm, parameters: regressor.parameters, parameterSet: task.parameterSet, fold: task.fold, metrics: metrics, fitSeconds: fit, worker: worker)
        }
    }
}

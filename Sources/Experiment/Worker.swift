import Foundation
import OwnThread
public import RedisClient

/// One algorithm's worker: reads the data set through its consumer group, splits it (seeded,
/// the same for every algorithm), trains, evaluates, stores the result in the run's results
/// hash and announces it on the completion channel.
public struct Worker: Sendable {
    public var keys: ExperimentKeys
    public var algorithm: any Regressor.Type
    public var parameters: [String: String]
    public var seed: UInt64 = 42
    public var testFraction = 0.2
    public var readTimeout: Duration = .seconds(120)
    public var consumer: String

    public init(keys: ExperimentKeys, algorithm: any Regressor.Type, parameters: [String: String] = [:]) {
        self.keys = keys
        self.algorithm = algorithm
        self.parameters = parameters
        consumer = "worker_\(algorithm.name)_\(ProcessInfo.processInfo.processIdentifier)"
    }

    /// Runs the whole worker; `log` gets progress lines.
    public func run(redis: RedisClient, reader readerClient: RedisClient, log: @Sendable (String) -> Void = { _ in }) async throws(ExperimentError) -> AlgorithmResult {
        guard testFraction > 0, testFraction < 1 else { throw ExperimentError(.parameter, "--test-fraction must be between 0 and 1, got \(testFraction)") }
        let regressor = try algorithm.init(parameters: parameters)
        var reader = StreamReader(keys: keys, group: ExperimentKeys.group(algorithm.name), consumer: consumer)
        reader.timeout = readTimeout
        let started = ContinuousClock.now
        var lastReport = ContinuousClock.now
        let read = try await reader.read(readerClient) { have, total in
            if ContinuousClock.now - lastReport > .milliseconds(500) || (total > 0 && have == total) {
                lastReport = .now
                log("read \(have)/\(total) samples")
            }
        }
        let readSeconds = Self.seconds(ContinuousClock.now - started)
        guard read.features.rows >= 5, read.features.columns >= 1 else {
            throw ExperimentError(.training, "\(read.features.rows) samples × \(read.features.columns) features: too few to split and train")
        }
        let split = TrainTestSplit(rows: read.features.rows, testFraction: testFraction, seed: seed)
        let trainX = read.features.rows(split.train), testX = read.features.rows(split.test)
        let trainY = split.train.map { read.targets[$0] }, testY = split.test.map { read.targets[$0] }
        log("fitting \(algorithm.title) on \(trainX.rows) rows × \(trainX.columns) features")
        // Training and prediction are long CPU-bound calls: threads of their own, not Swift's pool.
        let (model, fitSeconds) = try await onOwnThread(stackSize: Self.stackSize) { () throws(ExperimentError) -> (any FittedRegressor, Double) in
            let start = ContinuousClock.now
            let model = try regressor.fit(trainX, trainY)
            return (model, Self.seconds(ContinuousClock.now - start))
        }
        let (predicted, predictSeconds) = try await onOwnThread(stackSize: Self.stackSize) { () throws(ExperimentError) -> ([Double], Double) in
            let start = ContinuousClock.now
            let predicted = model.predict(testX)
            return (predicted, Self.seconds(ContinuousClock.now - start))
        }
        let metrics = RegressionMetrics(actual: testY, predicted: predicted)
        guard metrics.mse.isFinite, predicted.allSatisfy(\.isFinite) else {
            throw ExperimentError(.training, "\(algorithm.name): predictions or their error are not finite (targets too large for double precision?)")
        }
        let result = AlgorithmResult(
            algorithm: algorithm.name, title: algorithm.title, run: read.run, stream: keys.stream,
            data: .init(samples: read.features.rows, features: read.features.columns, featureNames: read.header.featureNames, target: read.header.targetName),
            split: .init(seed: seed, testFraction: testFraction, train: split.train.count, test: split.test.count),
            parameters: regressor.parameters, metrics: metrics, readSeconds: readSeconds, fitSeconds: fitSeconds, predictSeconds: predictSeconds,
            testIndices: split.test, actual: testY, predicted: predicted,
            host: ProcessInfo.processInfo.hostName, pid: ProcessInfo.processInfo.processIdentifier,
            finishedAt: ISO8601DateFormatter().string(from: Date()))
        try await ResultStore(keys: keys).store(result, on: redis)
        log(String(format: "done: MSE %.6f, R² %.4f (read %.2fs, fit %.2fs, predict %.3fs)", metrics.mse, metrics.r2, readSeconds, fitSeconds, predictSeconds))
        return result
    }

    /// Runs `work` on a new thread and waits for it without blocking the caller's thread.
    /// Stack of a training thread (deep trees recurse).
    static let stackSize = 8 << 20

    public static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// Where results live in Redis: the run's hash (a field per algorithm) and the completion
/// channel.
public struct ResultStore: Sendable {
    public var keys: ExperimentKeys

    public init(keys: ExperimentKeys) {
        self.keys = keys
    }

    public func store(_ result: AlgorithmResult, on redis: RedisClient) async throws(ExperimentError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json: Data
        do { json = try encoder.encode(result) } catch { throw ExperimentError(.training, "encoding the result: \(error)") }
        let event = #"{"run":"\#(result.run)","algorithm":"\#(result.algorithm)","mse":\#(result.metrics.mse)}"#
        do {
            _ = try await redis.send(.hset(keys.results(run: result.run), [(result.algorithm, Array(json))]))
            _ = try await redis.send(.publish(keys.completed, Array(event.utf8)))
        } catch {
            throw ExperimentError(.redis, "storing the \(result.algorithm) result: \(error)")
        }
    }

    /// The results stored so far for `run`, by algorithm (only those asked for, when given).
    public func results(run: String, algorithms: [String]? = nil, on redis: RedisClient) async throws(ExperimentError) -> [String: AlgorithmResult] {
        var hash: [String: [UInt8]] = [:]
        do {
            if let algorithms {
                for algorithm in algorithms {
                    if let json = try await redis.send(.hget(keys.results(run: run), field: algorithm)) { hash[algorithm] = json }
                }
            } else {
                hash = try await redis.send(.hgetall(keys.results(run: run)))
            }
        } catch {
            throw ExperimentError(.redis, "reading results of run \(run): \(error)")
        }
        var out: [String: AlgorithmResult] = [:]
        for (algorithm, json) in hash {
            do {
                out[algorithm] = try JSONDecoder().decode(AlgorithmResult.self, from: Data(json))
            } catch {
                throw ExperimentError(.redis, "the stored \(algorithm) result of run \(run) is not a result: \(error)")
            }
        }
        return out
    }

    /// The run of the stream's current data set: the id of its header entry.
    public func currentRun(on redis: RedisClient) async throws(ExperimentError) -> String {
        let first: [RedisStreamEntry]
        do { first = try await redis.send(.xrange(keys.stream, count: 1)) } catch { throw ExperimentError(.redis, "reading '\(keys.stream)': \(error)") }
        guard let entry = first.first, entry["type"] == Array("header".utf8) else {
            throw ExperimentError(.stream, "stream '\(keys.stream)' has no header entry: nothing was dispatched to it")
        }
        return entry.id
    }
}

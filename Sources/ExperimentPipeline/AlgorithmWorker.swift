import Foundation
import Durations
public import Regression
import ExperimentData
public import RedisClient

/// One algorithm's worker in the pipeline: reads the data set through its consumer group, splits
/// it (seeded, the same for every algorithm), evaluates the algorithm (`ModelEvaluation`), stores
/// the result in the run's results hash and announces it on the completion channel.
public struct AlgorithmWorker: Sendable {
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
        let clock = ContinuousClock()
        let started = clock.now
        var lastReport = clock.now
        let read = try await reader.read(readerClient) { have, total in
            if clock.now - lastReport > .milliseconds(500) || (total > 0 && have == total) {
                lastReport = clock.now
                log("read \(have)/\(total) samples")
            }
        }
        let readSeconds = (clock.now - started).inSeconds
        guard read.features.rows >= 5, read.features.columns >= 1 else {
            throw ExperimentError(.training, "\(read.features.rows) samples × \(read.features.columns) features: too few to split and train")
        }
        let split = TrainTestSplit(rows: read.features.rows, testFraction: testFraction, seed: seed)
        log("fitting \(algorithm.title) on \(split.train.count) rows × \(read.features.columns) features")
        let outcome = try await ModelEvaluation(train: split.train, test: split.test).run(regressor, features: read.features, targets: read.targets)
        let result = AlgorithmResult(
            algorithm: algorithm.name, title: algorithm.title, run: read.run, stream: keys.stream,
            data: .init(samples: read.features.rows, features: read.features.columns, featureNames: read.header.featureNames, target: read.header.targetName),
            split: .init(seed: seed, testFraction: testFraction, train: split.train.count, test: split.test.count),
            parameters: regressor.parameters, metrics: outcome.metrics, readSeconds: readSeconds, fitSeconds: outcome.fitSeconds, predictSeconds: outcome.predictSeconds,
            testIndices: split.test, actual: outcome.actual, predicted: outcome.predicted,
            host: ProcessInfo.processInfo.hostName, pid: ProcessInfo.processInfo.processIdentifier,
            finishedAt: ISO8601DateFormatter().string(from: Date()))
        try await ResultStore(keys: keys).store(result, on: redis)
        log(String(format: "done: MSE %.6f, R² %.4f (read %.2fs, fit %.2fs, predict %.3fs)", outcome.metrics.mse, outcome.metrics.r2, readSeconds, outcome.fitSeconds, outcome.predictSeconds))
        return result
    }
}

import Foundation
public import Regression
import ExperimentData
public import RedisClient
import TrafficModel

/// Where results live in Redis: the run's hash (a field per algorithm) and the completion
/// channel.
public struct ResultStore: Sendable {
    public var keys: ExperimentKeys

    public init(keys: ExperimentKeys) {
        self.keys = keys
    }

    /// Stores `result` under its algorithm in the run's hash, then announces it:
    /// `{"run":…,"algorithm":…,"mse":…}` on the completion channel.
    public func store(_ result: AlgorithmResult, on redis: RedisClient) async throws(ExperimentError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json: Data
        do { json = try encoder.encode(result) } catch { throw ExperimentError(.training, "encoding the \(result.algorithm) result", cause: error) }
        let event = Self.completionEvent(result)
        let key = keys.results(run: result.run)
        do { _ = try await redis.send(.hset(key, [(result.algorithm, Array(json))])) } catch { throw .redis(error, "storing the \(result.algorithm) result in \(key)") }
        do { _ = try await redis.send(.publish(keys.completed, Array(event.utf8))) } catch { throw .redis(error, "announcing the \(result.algorithm) result on \(keys.completed)") }
    }

    /// The completion channel's message for `result`: `{"run":…,"algorithm":…,"mse":…}`. The
    /// metrics are finite (`ModelEvaluation` refuses others), so the number is valid JSON.
    static func completionEvent(_ result: AlgorithmResult) -> String {
        #"{"run":\#(JSONText.quoted(result.run)),"algorithm":\#(JSONText.quoted(result.algorithm)),"mse":\#(result.metrics.mse)}"#
    }

    /// The results stored so far for `run`, by algorithm (only those asked for, when given).
    public func results(run: String, algorithms: [String]? = nil, on redis: RedisClient) async throws(ExperimentError) -> [String: AlgorithmResult] {
        let key = keys.results(run: run)
        var hash: [String: [UInt8]] = [:]
        do {
            if let algorithms {
                for algorithm in algorithms {
                    if let json = try await redis.send(.hget(key, field: algorithm)) { hash[algorithm] = json }
                }
            } else {
                hash = try await redis.send(.hgetall(key))
            }
        } catch {
            throw .redis(error, "reading the results of run \(run) (\(key))")
        }
        var out: [String: AlgorithmResult] = [:]
        for (algorithm, json) in hash {
            do {
                out[algorithm] = try JSONDecoder().decode(AlgorithmResult.self, from: Data(json))
            } catch {
                throw ExperimentError(.redis, "the stored \(algorithm) result of run \(run) in \(key) is not a result", cause: error)
            }
        }
        return out
    }

    /// The run of the stream's current data set: the id of its header entry.
    public func currentRun(on redis: RedisClient) async throws(ExperimentError) -> String {
        let first: [RedisStreamEntry]
        do { first = try await redis.send(.xrange(keys.stream, count: 1)) } catch { throw .redis(error, "reading '\(keys.stream)'") }
        guard let entry = first.first, entry["type"] == Array("header".utf8) else {
            throw ExperimentError(.stream, "stream '\(keys.stream)' has no header entry: nothing was dispatched to it")
        }
        return entry.id
    }
}

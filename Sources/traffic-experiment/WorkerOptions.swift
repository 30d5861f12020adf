import ArgumentParser
import Regression
import ExperimentData
import ExperimentPipeline
import GridPool
import Durations
import Foundation
import Logging
import RedisClient
import ServiceCLI
import Synchronization

/// Options every worker takes.
struct WorkerOptions: ParsableArguments {
    @Option(help: "Seed of the train/test split (the same for every algorithm).") var seed: UInt64 = 42
    @Option(name: .customLong("test-fraction"), help: "Share of the rows in the test set.") var testFraction = 0.2
    @Option(help: "Seconds to wait for the stream to be complete.") var timeout = 120
    @Option(help: "Threads an algorithm may train on (rf's default n_jobs); run-all shares the cores among its workers unless given. Default: every core.") var threads: Int?
    @Option(name: .customLong("param"), help: ArgumentHelp("Hyper-parameter name=value (repeatable); with several algorithms, algorithm.name=value. \(Self.parameterList)", valueName: "name=value"))
    var params: [String] = []

    static var parameterList: String {
        Regressors.all.map { "\($0.name): \($0.parameterHelp.map(\.name).joined(separator: ", "))" }.joined(separator: "; ")
    }

    /// The parameters meant for `algorithm`: plain `name=value`, or `algorithm.name=value`;
    /// `--threads` becomes rf's `n_jobs` unless that is given.
    func parameters(for algorithm: String, prefixed: Bool) throws -> [String: String] {
        var out: [String: String] = [:]
        if algorithm == RandomForestRegressor.name, let threads { out["n_jobs"] = String(threads) }
        for assignment in params {
            guard let eq = assignment.firstIndex(of: "=") else { throw ValidationError("--param '\(assignment)' is not name=value") }
            var name = String(assignment[..<eq])
            let value = String(assignment[assignment.index(after: eq)...])
            if let dot = name.firstIndex(of: "."), Regressors.names.contains(String(name[..<dot])) {
                guard name[..<dot] == algorithm else { continue }
                name = String(name[name.index(after: dot)...])
            } else if prefixed {
                throw ValidationError("--param '\(assignment)': with several algorithms name the algorithm, e.g. rf.\(name)=\(value)")
            }
            out[name] = value
        }
        return out
    }

    /// The arguments that pass these options on to a worker process.
    var forwarded: [String] {
        ["--seed", String(seed), "--test-fraction", String(testFraction), "--timeout", String(timeout)] + (threads.map { ["--threads", String($0)] } ?? [])
            + params.flatMap { ["--param", $0] }
    }
}

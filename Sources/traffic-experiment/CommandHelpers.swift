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

func parseAlgorithms(_ text: String) throws -> [String] {
    let names = text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    guard !names.isEmpty else { throw ValidationError("--algorithms names no algorithm") }
    guard Set(names).count == names.count else { throw ValidationError("--algorithms names an algorithm twice: \(text)") }
    for name in names where !Regressors.names.contains(name) {
        throw ValidationError("unknown algorithm '\(name)'; known: \(Regressors.names.joined(separator: ", "))")
    }
    return names
}

/// Prints `message` as the tool's error and exits 1 (clear message, no stack of wrappers).
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("traffic-experiment: error: \(message)\n".utf8))
    exit(1)
}

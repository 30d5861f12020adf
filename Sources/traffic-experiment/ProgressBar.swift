import Foundation
import Synchronization

/// A progress bar on a terminal (stderr); silent when stderr is not one.
final class ProgressBar: Sendable {
    private let label: String
    private let enabled = isatty(2) == 1
    /// The percentage last drawn (-1: none yet).
    private let last = Mutex(-1)

    init(label: String) {
        self.label = label
    }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let percent = done * 100 / total
        let changed = last.withLock { last -> Bool in
            defer { last = percent }
            return last != percent
        }
        guard changed else { return }
        let filled = percent * 30 / 100
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: 30 - filled)
        FileHandle.standardError.write(Data("\r[\(label)] \(bar) \(percent)% \(done)/\(total)".utf8))
    }

    func finish() {
        guard enabled, last.withLock({ $0 }) >= 0 else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

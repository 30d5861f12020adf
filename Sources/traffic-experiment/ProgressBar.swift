import Foundation

/// A progress bar on a terminal (stderr); silent when stderr is not one.
final class ProgressBar: @unchecked Sendable {
    private let label: String
    private let enabled = isatty(2) == 1
    private var last = -1

    init(label: String) {
        self.label = label
    }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total > 0 else { return }
        let percent = done * 100 / total
        guard percent != last else { return }
        last = percent
        let filled = percent * 30 / 100
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: 30 - filled)
        FileHandle.standardError.write(Data("\r[\(label)] \(bar) \(percent)% \(done)/\(total)".utf8))
    }

    func finish() {
        guard enabled, last >= 0 else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

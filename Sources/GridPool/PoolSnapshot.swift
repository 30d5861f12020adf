public import Foundation

/// What `status` shows: the live workers (registry) and jobs with their task counts per state.
public struct PoolSnapshot: Sendable, Codable, Equatable {
    /// A registry entry, as the worker wrote it.
    public struct WorkerInfo: Sendable, Codable, Equatable {
        public var name: String
        public var host: String
        public var pid: Int
        public var started: String
        public var currentTask: String?
        public var tasksDone: Int
        public var meanTaskSeconds: Double

        enum CodingKeys: String, CodingKey {
            case name, host, pid, started
            case currentTask = "current_task"
            case tasksDone = "tasks_done"
            case meanTaskSeconds = "mean_task_seconds"
        }
    }

    /// A job and its progress.
    public struct JobSummary: Sendable, Codable, Equatable {
        public var id: String
        public var dataset: String
        public var priority: String
        public var created: String
        public var counts: JobCounts
        public var finalised: Bool
    }

    public var pool: String
    public var workers: [WorkerInfo]
    public var jobs: [JobSummary]

    /// Sorted-key, pretty JSON.
    public func json() -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)) ?? Data("{}".utf8) // try?: strings, integers and finite means always encode
    }

    /// The table a terminal shows.
    public func table() -> String {
        func pad(_ text: String, _ width: Int) -> String { text.count >= width ? String(text.prefix(width)) : text + String(repeating: " ", count: width - text.count) }
        func right(_ text: String, _ width: Int) -> String { text.count >= width ? text : String(repeating: " ", count: width - text.count) + text }
        var out = "pool '\(pool)' — \(ISO8601DateFormatter().string(from: Date()))\n\nWORKERS (\(workers.count))\n"
        out += pad("NAME", 28) + pad("HOST", 16) + right("PID", 8) + "  " + pad("CURRENT TASK", 34) + right("DONE", 6) + right("MEAN s", 9) + "  STARTED\n"
        for w in workers {
            out += pad(w.name, 28) + pad(w.host, 16) + right(String(w.pid), 8) + "  " + pad(w.currentTask ?? "-", 34) + right(String(w.tasksDone), 6)
                + right(String(format: "%.3f", w.meanTaskSeconds), 9) + "  \(w.started)\n"
        }
        if workers.isEmpty { out += "(none: start some with `traffic-experiment worker --pool`)\n" }
        out += "\nJOBS (\(jobs.count))\n" + pad("JOB", 24) + pad("DATA SET", 18) + pad("PRIORITY", 9) + right("TASKS", 7) + right("QUEUED", 8) + right("RUNNING", 9)
            + right("DONE", 7) + right("FAILED", 8) + "  PROGRESS\n"
        for j in jobs {
            let c = j.counts
            // Counters read from Redis: a share past 1 (or below 0) is drawn as full (or empty).
            let share = c.tasks > 0 ? min(1, max(0, Double(c.done + c.failed) / Double(c.tasks))) : 0
            let bar = String(repeating: "█", count: Int(share * 20)) + String(repeating: "·", count: 20 - Int(share * 20))
            out += pad(j.id, 24) + pad(j.dataset, 18) + pad(j.priority, 9) + right(String(c.tasks), 7) + right(String(c.queued), 8) + right(String(c.running), 9)
                + right(String(c.done), 7) + right(String(c.failed), 8) + "  \(bar) \(Int(share * 100))%" + (j.finalised ? " finalised" : c.isFinished ? " finished" : "") + "\n"
        }
        return out
    }
}

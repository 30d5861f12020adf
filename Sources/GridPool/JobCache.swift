public import Regression

/// The data sets of the jobs a process works on, each loaded once however many of its workers
/// ask at the same time; the least recently used is dropped beyond `capacity` jobs, and a failed
/// load is tried again by the next asker.
public actor JobCache {
    private var entries: [String: Task<LoadedJob, any Error>] = [:]
    private var order: [String] = []
    private let capacity: Int

    public init(capacity: Int = 4) {
        self.capacity = max(1, capacity)
    }

    /// The job's data, loaded with `load` unless it is cached or being loaded.
    public func job(_ id: String, load: @escaping @Sendable () async throws(ExperimentError) -> LoadedJob) async throws(ExperimentError) -> LoadedJob {
        let task: Task<LoadedJob, any Error>
        if let existing = entries[id] {
            task = existing
        } else {
            task = Task { try await load() }
            entries[id] = task
        }
        order.removeAll { $0 == id }
        order.append(id)
        while order.count > capacity { entries[order.removeFirst()] = nil }
        do {
            return try await task.value
        } catch {
            if entries[id] == task { entries[id] = nil } // a failed load is tried again next time
            // `load` throws only ExperimentError; the task's type cannot say so.
            throw (error as? ExperimentError) ?? ExperimentError(.stream, "loading job \(id)", cause: error)
        }
    }

    /// The ids of the cached jobs, least recently used first.
    public var cached: [String] { order.filter { entries[$0] != nil } }
}

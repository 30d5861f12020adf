public import Regression
public import RedisClient

/// One data set being gathered from its task stream: entries are checked against the header as
/// they come (the header first; then in-range task ids of the header's width), and the complete
/// set is assembled into a matrix. Shared by the per-algorithm workers and the pool workers.
public struct StreamDataSet: Sendable {
    public let stream: String
    public private(set) var header: StreamFormat.Header?
    /// The header entry's id (the run).
    public private(set) var run = ""
    private var rows: [Int: StreamFormat.Sample] = [:]

    public init(stream: String) {
        self.stream = stream
    }

    /// Samples gathered so far.
    public var count: Int { rows.count }
    public var isComplete: Bool { header.map { rows.count >= $0.sampleCount } ?? false }

    /// Adds one entry; a second header starts a new data set.
    public mutating func add(_ entry: RedisStreamEntry) throws(ExperimentError) {
        switch try StreamFormat.decode(entry) {
        case .header(let h):
            if header != nil, run != entry.id { rows = [:] }
            header = h
            run = entry.id
        case .sample(let sample):
            guard let h = header else {
                throw ExperimentError(.stream, "stream '\(stream)': sample entry \(entry.id) before any header (the header must be the first entry)")
            }
            guard sample.taskID < h.sampleCount else {
                throw ExperimentError(.stream, "stream '\(stream)': entry \(entry.id) has task_id \(sample.taskID), but the header has n_samples \(h.sampleCount)")
            }
            guard sample.featureValues.count == h.featureNames.count else {
                throw ExperimentError(.stream, "stream '\(stream)': entry \(entry.id) (task_id \(sample.taskID)) has \(sample.featureValues.count) feature values, the header names \(h.featureNames.count)")
            }
            rows[sample.taskID] = sample
        }
    }

    /// The complete data set: features (one row per task id, in order) and targets.
    public func assembled() throws(ExperimentError) -> (header: StreamFormat.Header, features: Matrix, targets: [Double]) {
        guard let h = header else { throw ExperimentError(.stream, "stream '\(stream)' has no header entry") }
        let width = h.featureNames.count
        var values: [Double] = []
        values.reserveCapacity(rows.count * width) // every row was checked against the width
        var targets: [Double] = []
        targets.reserveCapacity(rows.count)
        for task in 0..<h.sampleCount {
            guard let sample = rows[task] else {
                throw ExperimentError(.stream, "stream '\(stream)': task_id \(task) is missing (task ids must be 0..<n_samples)")
            }
            values += sample.featureValues
            targets.append(sample.target)
        }
        return (h, Matrix(rows: h.sampleCount, columns: width, values: values), targets)
    }
}

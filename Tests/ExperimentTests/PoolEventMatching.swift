@testable import GridPool

extension PoolEvent {
    /// The task of a task event whose new state is `state` (nil for other events).
    func task(in state: TaskRecord.State) -> String? {
        if case .task(_, let task, state, _, _) = self { task } else { nil }
    }
}

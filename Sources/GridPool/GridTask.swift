/// One unit of a grid search: an algorithm with one parameter set, trained and scored on one
/// cross-validation fold. Task ids are stable (`<algorithm>-<set>-<fold>`), so a task's result
/// can be written idempotently under its id however often it runs.
public struct GridTask: Sendable, Equatable, Codable {
    public var id: String
    public var algorithm: String
    public var parameters: [String: String]
    /// Index of the parameter set within its algorithm's sets.
    public var parameterSet: Int
    public var fold: Int

    /// Every task of a grid with `folds` folds: per algorithm (file order), per parameter set,
    /// per fold.
    public static func plan(_ grid: GridSpec, folds: Int) -> [GridTask] {
        grid.entries.flatMap { entry in
            entry.parameterSets.enumerated().flatMap { set, parameters in
                (0..<folds).map { fold in
                    GridTask(id: "\(entry.algorithm)-\(set)-\(fold)", algorithm: entry.algorithm, parameters: parameters, parameterSet: set, fold: fold)
                }
            }
        }
    }
}

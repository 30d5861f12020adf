/// Every algorithm the tool knows.
public enum Regressors {
    public static let all: [any Regressor.Type] = [
        RandomForestRegressor.self,
        SupportVectorRegressor.self,
        LinearRegressor.self,
    ]

    public static var names: [String] { all.map { $0.name } }

    public static func named(_ name: String) throws(ExperimentError) -> any Regressor.Type {
        guard let type = all.first(where: { $0.name == name }) else {
            throw ExperimentError(.parameter, "unknown algorithm '\(name)'; known: \(names.joined(separator: ", "))")
        }
        return type
    }
}

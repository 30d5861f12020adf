import Regression

/// Versions recorded with results.
public enum ExperimentVersion {
    public static let tool = "1.0.0"
    public static var libsvm: String { SupportVectorRegressor.libsvmVersion }
    public static var swift: String {
        #if compiler(>=6.3)
        "6.3"
        #elseif compiler(>=6.2)
        "6.2"
        #else
        "6"
        #endif
    }
}

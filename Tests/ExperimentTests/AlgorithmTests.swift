import Foundation
import Testing
@testable import Regression
@testable import ExperimentData
@testable import ExperimentPipeline
@testable import GridPool

/// Each algorithm against scikit-learn on the committed data sets (Fixtures/README.md), with the
/// split fixed there: lr coefficients to 1e-9 relative; svr predictions to 1e-3 absolute and its
/// MSE to 1 %; rf (another random generator than sklearn's) MSE within the larger of 5 % of
/// sklearn's mean over ten seeds and three of their standard deviations.
@Suite struct AlgorithmTests {
    /// Normalised features and targets of a fixture, split into the reference's train/test rows.
    static func split(_ file: String, trainRows: Int) throws -> (train: Matrix, trainY: [Double], test: Matrix, testY: [Double]) {
        let data = try Dataset.load(csv: Fixtures.path(file), target: "target")
        let all = Matrix(rows: data.rowCount, columns: data.featureCount, values: data.normalization().apply(data.features))
        let train = Array(0..<trainRows), test = Array(trainRows..<data.rowCount)
        return (all.rows(train), train.map { data.targets[$0] }, all.rows(test), test.map { data.targets[$0] })
    }

    @Test func linearRegressionGivesScikitLearnsCoefficientsOnNoiselessData() throws {
        let reference = Fixtures.section("lr")
        let (train, trainY, test, testY) = try Self.split("linear.csv", trainRows: 160)
        let fitted = try LinearRegressor(parameters: [:]).fitLine(train, trainY)
        for (ours, theirs) in zip(fitted.coefficients, Fixtures.numbers(reference["coef"])) {
            #expect(abs(ours - theirs) <= 1e-9 * abs(theirs), "coefficient \(ours) vs \(theirs)")
        }
        #expect(abs(fitted.intercept - Fixtures.number(reference["intercept"])) <= 1e-9 * abs(Fixtures.number(reference["intercept"])))
        let metrics = RegressionMetrics(actual: testY, predicted: fitted.predict(test))
        #expect(metrics.mse < 1e-12, "exact on a noiseless line")
        #expect(abs(metrics.r2 - 1) < 1e-12)
    }

    @Test func svrMatchesScikitLearnsSVRDefaults() throws {
        let reference = Fixtures.section("svr")
        let (train, trainY, test, testY) = try Self.split("friedman_small.csv", trainRows: 240)
        let svr = try SupportVectorRegressor(parameters: [:])
        let gamma = svr.gammaValue(for: train)
        #expect(abs(gamma - Fixtures.number(reference["gamma"])) <= 1e-12 * gamma, "gamma='scale'")
        let predicted = try svr.fit(train, trainY).predict(test)
        for (ours, theirs) in zip(predicted, Fixtures.numbers(reference["test_predictions"])) {
            #expect(abs(ours - theirs) <= 1e-3, "prediction \(ours) vs \(theirs)")
        }
        let mse = RegressionMetrics(actual: testY, predicted: predicted).mse
        let theirs = Fixtures.number(reference["test_mse"])
        #expect(abs(mse - theirs) <= 0.01 * theirs, "MSE \(mse) vs \(theirs)")
    }

    @Test func randomForestIsAsAccurateAsScikitLearns() throws {
        let reference = Fixtures.section("rf")
        let (train, trainY, test, testY) = try Self.split("friedman_small.csv", trainRows: 240)
        let mean = Fixtures.number(reference["test_mse_mean"]), deviation = Fixtures.number(reference["test_mse_std"])
        let tolerance = max(0.05 * mean, 3 * deviation)
        let forest = try RandomForestRegressor(parameters: [:]).fitForest(train, trainY)
        #expect(forest.trees.count == 100)
        let mse = RegressionMetrics(actual: testY, predicted: forest.predict(test)).mse
        #expect(abs(mse - mean) <= tolerance, "MSE \(mse), sklearn \(mean) ± \(tolerance)")
    }

    @Test func theForestIsSeededAndIndependentOfTheThreadCount() throws {
        let (train, trainY, test, _) = try Self.split("friedman_small.csv", trainRows: 240)
        let one = try RandomForestRegressor(parameters: ["n_estimators": "12", "n_jobs": "1", "random_state": "7"]).fitForest(train, trainY).predict(test)
        let many = try RandomForestRegressor(parameters: ["n_estimators": "12", "n_jobs": "4", "random_state": "7"]).fitForest(train, trainY).predict(test)
        let other = try RandomForestRegressor(parameters: ["n_estimators": "12", "n_jobs": "4", "random_state": "8"]).fitForest(train, trainY).predict(test)
        #expect(one == many)
        #expect(one != other)
    }

    @Test func forestParametersShapeTheTrees() throws {
        let (train, trainY, _, _) = try Self.split("friedman_small.csv", trainRows: 240)
        let full = try RandomForestRegressor(parameters: ["n_estimators": "5"]).fitForest(train, trainY)
        let shallow = try RandomForestRegressor(parameters: ["n_estimators": "5", "max_depth": "3"]).fitForest(train, trainY)
        let leafy = try RandomForestRegressor(parameters: ["n_estimators": "5", "min_samples_leaf": "20"]).fitForest(train, trainY)
        #expect(shallow.trees.allSatisfy { $0.nodeCount <= 15 }, "depth 3: at most 15 nodes")
        #expect(leafy.trees.map(\.nodeCount).reduce(0, +) < full.trees.map(\.nodeCount).reduce(0, +) / 4)
    }

    @Test func unknownOrBadParametersAreRefusedByName() {
        #expect(throws: ExperimentError.self) { try RandomForestRegressor(parameters: ["n_estimator": "5"]) }
        #expect(throws: ExperimentError.self) { try RandomForestRegressor(parameters: ["max_features": "most"]) }
        #expect(throws: ExperimentError.self) { try SupportVectorRegressor(parameters: ["C": "-1"]) }
        do {
            _ = try SupportVectorRegressor(parameters: ["gama": "1"])
            Issue.record("a misspelt parameter was accepted")
        } catch {
            #expect(error.message.contains("unknown parameter gama") && error.message.contains("gamma"))
        }
    }

    @Test func metricsAreScikitLearnsDefinitions() {
        let m = RegressionMetrics(actual: [3, -0.5, 2, 7], predicted: [2.5, 0, 2, 8])
        #expect(m.mse == 0.375)
        #expect(m.mae == 0.5)
        #expect(abs(m.r2 - 0.9486081370449679) < 1e-12)
        #expect(RegressionMetrics(actual: [1, 1], predicted: [1, 1]).r2 == 1)
    }

    @Test func theSplitIsSeededAndSizedLikeScikitLearns() {
        let a = TrainTestSplit(rows: 442, testFraction: 0.2, seed: 42)
        #expect(a.test.count == 89 && a.train.count == 353, "ceil(0.2 × 442) test rows")
        #expect(a == TrainTestSplit(rows: 442, testFraction: 0.2, seed: 42))
        #expect(a != TrainTestSplit(rows: 442, testFraction: 0.2, seed: 43))
        #expect(Set(a.test).isDisjoint(with: a.train) && Set(a.test + a.train) == Set(0..<442))
    }
}

import Foundation
import ReportHTML

/// `training_report.html`: one self-contained page (no network): a table of the metrics, an SVG
/// bar chart of MSE per algorithm, and a predicted-vs-actual scatter per algorithm.
enum ReportPage {
    static func html(_ results: TrainingResults, order: [String]) -> String {
        let algorithms = order.compactMap { results.algorithms[$0] }
        var rows = ""
        for r in algorithms {
            rows += "<tr><td>\(HTMLPage.escape(r.title)) <code>\(HTMLPage.escape(r.algorithm))</code></td><td>\(HTMLPage.format(r.metrics.mse))</td><td>\(HTMLPage.format(r.metrics.rmse))</td><td>\(HTMLPage.format(r.metrics.mae))</td><td>\(HTMLPage.format(r.metrics.r2))</td><td>\(String(format: "%.3f", r.fitSeconds))</td><td>\(String(format: "%.3f", r.predictSeconds))</td><td><code>\(HTMLPage.escape(r.parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")))</code></td></tr>\n"
        }
        let scatters = algorithms.map { scatter($0) }.joined(separator: "\n")
        return """
        \(HTMLPage.head(title: "Training report — \(results.dataset.name)"))
        <h1>Training report: \(HTMLPage.escape(results.dataset.name))</h1>
        <div class="meta">\(results.dataset.samples) samples × \(results.dataset.features) features, target <code>\(HTMLPage.escape(results.dataset.target))</code> · split: \(results.split.train) train / \(results.split.test) test (seed \(results.split.seed)) · run <code>\(HTMLPage.escape(results.run))</code> on stream <code>\(HTMLPage.escape(results.stream))</code> · collected \(HTMLPage.escape(results.collectedAt))</div>
        <table>
        <thead><tr><th>algorithm</th><th>MSE</th><th>RMSE</th><th>MAE</th><th>R²</th><th>fit s</th><th>predict s</th><th>parameters</th></tr></thead>
        <tbody>
        \(rows)</tbody>
        </table>
        <h2>Mean squared error (test set)</h2>
        <div class="charts"><figure id="mse-chart"><figcaption>MSE per algorithm (lower is better)</figcaption>\(barChart(algorithms))</figure></div>
        <h2>Predicted vs actual (test set)</h2>
        <div class="charts">
        \(scatters)
        </div>
        </body>
        </html>

        """
    }

    static func barChart(_ results: [AlgorithmResult]) -> String {
        let width = 480.0, barHeight = 28.0, gap = 12.0, left = 130.0, right = 90.0
        let height = Double(results.count) * (barHeight + gap) + gap
        let maximum = results.map(\.metrics.mse).max() ?? 1
        var svg = #"<svg class="bar-chart" width="\#(Int(width))" height="\#(Int(height))" viewBox="0 0 \#(Int(width)) \#(Int(height))" role="img" aria-label="MSE per algorithm">"#
        for (i, r) in results.enumerated() {
            let y = gap + Double(i) * (barHeight + gap)
            let length = maximum > 0 ? (width - left - right) * r.metrics.mse / maximum : 0
            svg += #"<text x="\#(left - 8)" y="\#(y + barHeight / 2 + 4)" text-anchor="end">\#(HTMLPage.escape(r.title))</text>"#
            svg += #"<rect class="bar" data-algorithm="\#(HTMLPage.escape(r.algorithm))" x="\#(left)" y="\#(y)" width="\#(String(format: "%.1f", max(length, 1)))" height="\#(barHeight)" rx="3"/>"#
            svg += #"<text class="bar-label" x="\#(String(format: "%.1f", left + max(length, 1) + 6))" y="\#(y + barHeight / 2 + 4)">\#(HTMLPage.format(r.metrics.mse))</text>"#
        }
        return svg + "</svg>"
    }

    static func scatter(_ r: AlgorithmResult) -> String {
        let size = 300.0, pad = 36.0
        let all = r.actual + r.predicted
        var low = all.min() ?? 0, high = all.max() ?? 1
        if high - low < 1e-12 { low -= 1; high += 1 }
        func x(_ v: Double) -> String { String(format: "%.1f", pad + (v - low) / (high - low) * (size - 2 * pad)) }
        func y(_ v: Double) -> String { String(format: "%.1f", size - pad - (v - low) / (high - low) * (size - 2 * pad)) }
        var svg = #"<figure class="scatter" data-algorithm="\#(HTMLPage.escape(r.algorithm))"><figcaption>\#(HTMLPage.escape(r.title)): predicted vs actual (R² \#(String(format: "%.3f", r.metrics.r2)))</figcaption>"#
        svg += #"<svg width="\#(Int(size))" height="\#(Int(size))" viewBox="0 0 \#(Int(size)) \#(Int(size))" role="img" aria-label="\#(HTMLPage.escape(r.title)) predicted against actual">"#
        svg += #"<line class="axis" x1="\#(pad)" y1="\#(size - pad)" x2="\#(size - pad)" y2="\#(size - pad)"/><line class="axis" x1="\#(pad)" y1="\#(pad)" x2="\#(pad)" y2="\#(size - pad)"/>"#
        svg += #"<line class="ideal" x1="\#(x(low))" y1="\#(y(low))" x2="\#(x(high))" y2="\#(y(high))"/>"#
        for (a, p) in zip(r.actual, r.predicted) { svg += #"<circle class="point" cx="\#(x(a))" cy="\#(y(p))" r="2"/>"# }
        svg += #"<text x="\#(size / 2)" y="\#(size - 8)" text-anchor="middle">actual</text><text x="12" y="\#(size / 2)" text-anchor="middle" transform="rotate(-90 12 \#(size / 2))">predicted</text>"#
        svg += #"<text x="\#(pad)" y="\#(size - pad + 14)">\#(HTMLPage.format(low))</text><text x="\#(size - pad)" y="\#(size - pad + 14)" text-anchor="end">\#(HTMLPage.format(high))</text>"#
        return svg + "</svg></figure>"
    }
}

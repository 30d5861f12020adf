import Foundation

/// `training_report.html`: one self-contained page (no network): a table of the metrics, an SVG
/// bar chart of MSE per algorithm, and a predicted-vs-actual scatter per algorithm.
enum ReportPage {
    /// The reports' shared look (this page and the grid report).
    static let style = """
    <style>
      body { margin: 0; padding: 24px 32px; background: #fafbfc; color: #1f2328; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
      h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 28px 0 10px; }
      .meta { color: #59636e; margin-bottom: 16px; }
      table { border-collapse: collapse; background: #fff; border: 1px solid #d1d9e0; }
      th, td { padding: 6px 12px; border-bottom: 1px solid #e6ebf0; text-align: right; font-variant-numeric: tabular-nums; }
      th:first-child, td:first-child, td:last-child { text-align: left; }
      code { font-size: 12px; color: #59636e; }
      .charts { display: flex; flex-wrap: wrap; gap: 20px; }
      figure { margin: 0; background: #fff; border: 1px solid #d1d9e0; border-radius: 8px; padding: 12px; }
      figcaption { font-weight: 600; margin-bottom: 6px; }
      svg text { font: 11px system-ui, sans-serif; fill: #59636e; }
      .bar { fill: #4a8fe7; } .bar-label { fill: #1f2328; font-weight: 600; }
      .point { fill: #4a8fe7; fill-opacity: .45; } .ideal { stroke: #e5484d; stroke-dasharray: 4 3; } .axis { stroke: #9aa5b1; }
      .whisker { stroke: #1f2328; stroke-width: 1.5; } .failed { color: #e5484d; } .bar.incomplete { fill: #e5a84d; }
    </style>
    """

    /// The start of a report page up to `<body>`: document type, metadata, title and style.
    static func head(title: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title))</title>
        \(style)
        </head>
        <body>
        """
    }

    static func html(_ results: TrainingResults, order: [String]) -> String {
        let algorithms = order.compactMap { results.algorithms[$0] }
        var rows = ""
        for r in algorithms {
            rows += "<tr><td>\(escape(r.title)) <code>\(escape(r.algorithm))</code></td><td>\(format(r.metrics.mse))</td><td>\(format(r.metrics.rmse))</td><td>\(format(r.metrics.mae))</td><td>\(format(r.metrics.r2))</td><td>\(String(format: "%.3f", r.fitSeconds))</td><td>\(String(format: "%.3f", r.predictSeconds))</td><td><code>\(escape(r.parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")))</code></td></tr>\n"
        }
        let scatters = algorithms.map { scatter($0) }.joined(separator: "\n")
        return """
        \(head(title: "Training report — \(results.dataset.name)"))
        <h1>Training report: \(escape(results.dataset.name))</h1>
        <div class="meta">\(results.dataset.samples) samples × \(results.dataset.features) features, target <code>\(escape(results.dataset.target))</code> · split: \(results.split.train) train / \(results.split.test) test (seed \(results.split.seed)) · run <code>\(escape(results.run))</code> on stream <code>\(escape(results.stream))</code> · collected \(escape(results.collectedAt))</div>
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
            svg += #"<text x="\#(left - 8)" y="\#(y + barHeight / 2 + 4)" text-anchor="end">\#(escape(r.title))</text>"#
            svg += #"<rect class="bar" data-algorithm="\#(escape(r.algorithm))" x="\#(left)" y="\#(y)" width="\#(String(format: "%.1f", max(length, 1)))" height="\#(barHeight)" rx="3"/>"#
            svg += #"<text class="bar-label" x="\#(String(format: "%.1f", left + max(length, 1) + 6))" y="\#(y + barHeight / 2 + 4)">\#(format(r.metrics.mse))</text>"#
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
        var svg = #"<figure class="scatter" data-algorithm="\#(escape(r.algorithm))"><figcaption>\#(escape(r.title)): predicted vs actual (R² \#(String(format: "%.3f", r.metrics.r2)))</figcaption>"#
        svg += #"<svg width="\#(Int(size))" height="\#(Int(size))" viewBox="0 0 \#(Int(size)) \#(Int(size))" role="img" aria-label="\#(escape(r.title)) predicted against actual">"#
        svg += #"<line class="axis" x1="\#(pad)" y1="\#(size - pad)" x2="\#(size - pad)" y2="\#(size - pad)"/><line class="axis" x1="\#(pad)" y1="\#(pad)" x2="\#(pad)" y2="\#(size - pad)"/>"#
        svg += #"<line class="ideal" x1="\#(x(low))" y1="\#(y(low))" x2="\#(x(high))" y2="\#(y(high))"/>"#
        for (a, p) in zip(r.actual, r.predicted) { svg += #"<circle class="point" cx="\#(x(a))" cy="\#(y(p))" r="2"/>"# }
        svg += #"<text x="\#(size / 2)" y="\#(size - 8)" text-anchor="middle">actual</text><text x="12" y="\#(size / 2)" text-anchor="middle" transform="rotate(-90 12 \#(size / 2))">predicted</text>"#
        svg += #"<text x="\#(pad)" y="\#(size - pad + 14)">\#(format(low))</text><text x="\#(size - pad)" y="\#(size - pad + 14)" text-anchor="end">\#(format(high))</text>"#
        return svg + "</svg></figure>"
    }

    static func format(_ value: Double) -> String {
        abs(value) >= 1000 || (abs(value) < 0.001 && value != 0) ? String(format: "%.4g", value) : String(format: "%.4f", value)
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

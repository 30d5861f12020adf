import Foundation
import ReportHTML

/// The grid report: one self-contained page in the pipeline report's style — the ranking table
/// (mean ± standard deviation of the cross-validated R², per-fold scores), a chart of the score
/// per parameter set with its spread over the folds, and the failed tasks.
enum GridReportPage {
    static func html(_ results: GridResults) -> String {
        var rows = ""
        for entry in results.ranking {
            let folds = entry.foldR2.map { $0.map(HTMLPage.format) ?? #"<span class="failed">failed</span>"# }.joined(separator: " · ")
            let parameters = entry.parameters.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            rows += "<tr data-rank=\"\(entry.rank)\"><td>\(entry.rank)</td><td>\(HTMLPage.escape(entry.title)) <code>\(HTMLPage.escape(entry.algorithm)) #\(entry.parameterSet)</code></td>"
                + "<td>\(HTMLPage.format(entry.meanR2)) ± \(HTMLPage.format(entry.stdR2))</td><td>\(HTMLPage.format(entry.meanMSE)) ± \(HTMLPage.format(entry.stdMSE))</td>"
                + "<td>\(String(format: "%.3f", entry.meanFitSeconds))</td><td>\(folds)</td><td><code>\(HTMLPage.escape(parameters.isEmpty ? "defaults" : parameters))</code></td></tr>\n"
        }
        var failures = ""
        if !results.failures.isEmpty {
            failures = "<h2>Failed tasks</h2>\n<table><thead><tr><th>task</th><th>attempts</th><th>last error</th></tr></thead><tbody>\n"
            for failure in results.failures {
                failures += "<tr class=\"failed\"><td><code>\(HTMLPage.escape(failure.task))</code></td><td>\(failure.attempts)</td><td>\(HTMLPage.escape(failure.error))</td></tr>\n"
            }
            failures += "</tbody></table>\n"
        }
        return """
        \(HTMLPage.head(title: "Grid search — \(results.dataset) — job \(results.job)"))
        <h1>Grid search: \(HTMLPage.escape(results.dataset))</h1>
        <div class="meta">job <code>\(HTMLPage.escape(results.job))</code> · \(results.folds)-fold cross-validation (seed \(results.seed)) · \(results.tasks) tasks: \(results.done) done, \(results.failed) failed · \(String(format: "%.2f", results.wallSeconds)) s from first start to last finish · priority \(HTMLPage.escape(results.priority)) · finalised by <code>\(HTMLPage.escape(results.finaliser))</code> at \(HTMLPage.escape(results.finalisedAt))</div>
        <table>
        <thead><tr><th>rank</th><th>parameter set</th><th>R² (mean ± std)</th><th>MSE (mean ± std)</th><th>fit s</th><th>R² per fold</th><th>parameters</th></tr></thead>
        <tbody>
        \(rows)</tbody>
        </table>
        <h2>Cross-validated R² per parameter set</h2>
        <div class="charts"><figure id="score-chart"><figcaption>Mean R² over the folds, whisker ± one standard deviation (higher is better)</figcaption>\(chart(results.ranking))</figure></div>
        \(failures)</body>
        </html>

        """
    }

    /// Horizontal bars of mean R² per parameter set (ranking order), each with a ± std whisker;
    /// the axis spans the scores (from 0 unless a score is negative).
    static func chart(_ entries: [GridResults.Entry]) -> String {
        let width = 640.0, barHeight = 18.0, gap = 8.0, left = 260.0, right = 90.0
        let height = Double(entries.count) * (barHeight + gap) + gap + 18
        let finite = entries.filter { $0.meanR2.isFinite }
        let low = min(0, finite.map { $0.meanR2 - $0.stdR2 }.min() ?? 0)
        let high = max(low + 1e-9, finite.map { $0.meanR2 + $0.stdR2 }.max() ?? 1)
        let span = width - left - right
        func x(_ value: Double) -> Double { left + (value - low) / (high - low) * span }
        func number(_ value: Double) -> String { String(format: "%.1f", value) }
        var svg = #"<svg class="score-chart" width="\#(Int(width))" height="\#(Int(height))" viewBox="0 0 \#(Int(width)) \#(Int(height))" role="img" aria-label="Mean R² per parameter set">"#
        svg += #"<line class="axis" x1="\#(number(x(0)))" y1="\#(gap)" x2="\#(number(x(0)))" y2="\#(number(height - 18))"/>"#
        for (i, entry) in entries.enumerated() where entry.meanR2.isFinite {
            let y = gap + Double(i) * (barHeight + gap)
            let start = x(min(0, entry.meanR2)), end = x(max(0, entry.meanR2))
            let label = entry.label.count > 42 ? String(entry.label.prefix(41)) + "…" : entry.label
            svg += #"<text x="\#(left - 8)" y="\#(number(y + barHeight / 2 + 4))" text-anchor="end">\#(HTMLPage.escape(label))</text>"#
            svg += #"<rect class="bar\#(entry.foldsFailed > 0 ? " incomplete" : "")" data-set="\#(HTMLPage.escape(entry.algorithm))-\#(entry.parameterSet)" x="\#(number(start))" y="\#(number(y))" width="\#(number(max(end - start, 1)))" height="\#(barHeight)" rx="3"/>"#
            let mid = number(y + barHeight / 2)
            svg += #"<line class="whisker" x1="\#(number(x(entry.meanR2 - entry.stdR2)))" y1="\#(mid)" x2="\#(number(x(entry.meanR2 + entry.stdR2)))" y2="\#(mid)"/>"#
            svg += #"<text class="bar-label" x="\#(number(x(entry.meanR2 + entry.stdR2) + 6))" y="\#(number(y + barHeight / 2 + 4))">\#(HTMLPage.format(entry.meanR2))</text>"#
        }
        svg += #"<text x="\#(number(x(low)))" y="\#(number(height - 4))">\#(HTMLPage.format(low))</text><text x="\#(number(x(high)))" y="\#(number(height - 4))" text-anchor="end">\#(HTMLPage.format(high))</text>"#
        return svg + "</svg>"
    }
}

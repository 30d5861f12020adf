import Foundation

/// The small page builder both experiment reports share (the pipeline's training report and the
/// grid report): one look, the document's head, HTML escaping and number formatting. Pages are
/// self-contained (no network): style inline, charts as inline SVG.
public enum HTMLPage {
    /// The reports' shared look (this page and the grid report).
    public static let style = """
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
    public static func head(title: String) -> String {
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

    public static func format(_ value: Double) -> String {
        abs(value) >= 1000 || (abs(value) < 0.001 && value != 0) ? String(format: "%.4g", value) : String(format: "%.4f", value)
    }

    public static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}

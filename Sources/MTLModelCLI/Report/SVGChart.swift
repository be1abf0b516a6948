import Foundation

/// One chart as inline SVG: a plot of lines and points over numeric axes (ROC curves,
/// reliability diagrams), or labelled horizontal bars (sizes, changes per tensor). Fixed pixel
/// size, so that it prints as it shows.
struct SVGChart {
    /// A polyline, or points whose areas show weights.
    struct Series {
        var name: String
        var x: [Double]
        var y: [Double]
        /// Point sizes (areas proportional to them); nil: a line.
        var weights: [Double]? = nil
        var color: String
    }

    static let palette = ["#2f6fd0", "#d2612b", "#2a9d68", "#8c4fc4", "#c0392b", "#6b7280"]

    var svg: String

    private static let size = (width: 460.0, height: 320.0)
    private static let margin = (left: 68.0, right: 16.0, top: 30.0, bottom: 44.0)

    /// A plot over `x` × `y` ranges, with the identity diagonal when `diagonal`.
    static func plot(title: String, xLabel: String, yLabel: String, x: ClosedRange<Double> = 0...1, y: ClosedRange<Double> = 0...1,
                     series: [Series], diagonal: Bool = false) -> SVGChart {
        let (w, h) = size
        let plotWidth = w - margin.left - margin.right, plotHeight = h - margin.top - margin.bottom
        func px(_ value: Double) -> Double { margin.left + (value - x.lowerBound) / max(x.upperBound - x.lowerBound, 1e-300) * plotWidth }
        func py(_ value: Double) -> Double { margin.top + plotHeight - (value - y.lowerBound) / max(y.upperBound - y.lowerBound, 1e-300) * plotHeight }
        var body = frame(title: title, xLabel: xLabel, yLabel: yLabel)
        for tick in ticks(x) {
            body += line(px(tick), margin.top + plotHeight, px(tick), margin.top + plotHeight + 4, "#394150")
            body += text(px(tick), margin.top + plotHeight + 16, label(tick), anchor: "middle")
        }
        for tick in ticks(y) {
            body += line(margin.left - 4, py(tick), margin.left, py(tick), "#394150")
            body += line(margin.left, py(tick), margin.left + plotWidth, py(tick), "#eef0f4")
            body += text(margin.left - 7, py(tick) + 4, label(tick), anchor: "end")
        }
        body += "<rect x=\"\(n(margin.left))\" y=\"\(n(margin.top))\" width=\"\(n(plotWidth))\" height=\"\(n(plotHeight))\" fill=\"none\" stroke=\"#394150\"/>"
        if diagonal {
            let low = max(x.lowerBound, y.lowerBound), high = min(x.upperBound, y.upperBound)
            body += "<line x1=\"\(n(px(low)))\" y1=\"\(n(py(low)))\" x2=\"\(n(px(high)))\" y2=\"\(n(py(high)))\" stroke=\"#9aa1ad\" stroke-dasharray=\"4 4\"/>"
        }
        for item in series {
            let points = zip(item.x, item.y).filter { $0.0.isFinite && $0.1.isFinite }
            if let weights = item.weights {
                let largest = max(weights.max() ?? 1, 1e-300)
                for ((vx, vy), weight) in zip(points, weights) where weight > 0 {
                    let radius = 2 + 7 * (weight / largest).squareRoot()
                    body += "<circle cx=\"\(n(px(vx)))\" cy=\"\(n(py(vy)))\" r=\"\(n(radius))\" fill=\"\(item.color)\" fill-opacity=\"0.55\" stroke=\"\(item.color)\"/>"
                }
            } else {
                body += "<polyline fill=\"none\" stroke=\"\(item.color)\" stroke-width=\"1.8\" points=\""
                    + points.map { "\(n(px($0.0))),\(n(py($0.1)))" }.joined(separator: " ") + "\"/>"
            }
        }
        body += legend(series.map { ($0.name, $0.color) }, x: margin.left + 8, y: margin.top + 14)
        return SVGChart(svg: wrap(title: title, body))
    }

    /// Horizontal bars, one per label, scaled to the largest value; `format` prints each value.
    static func bars(title: String, labels: [String], values: [Double], color: String = palette[0],
                     format: (Double) -> String) -> SVGChart {
        let rowHeight = 20.0, labelWidth = 170.0
        let height = margin.top + Double(max(labels.count, 1)) * rowHeight + 12
        let width = size.width + 80
        let largest = max(values.filter(\.isFinite).max() ?? 0, 1e-300)
        var body = text(width / 2, 18, title, anchor: "middle", className: "title")
        for (index, (name, value)) in zip(labels, values).enumerated() {
            let y = margin.top + Double(index) * rowHeight
            let length = value.isFinite ? max(0, value) / largest * (width - labelWidth - 90) : 0
            body += text(labelWidth - 6, y + 13, shortened(name, to: 28), anchor: "end")
            body += "<rect x=\"\(n(labelWidth))\" y=\"\(n(y + 3))\" width=\"\(n(max(length, 0.5)))\" height=\"\(n(rowHeight - 6))\" fill=\"\(color)\"><title>\(HTMLReport.escaped(name)): \(HTMLReport.escaped(format(value)))</title></rect>"
            body += text(labelWidth + length + 5, y + 13, format(value), anchor: "start")
        }
        return SVGChart(svg: wrap(title: title, body, width: width, height: height))
    }

    // MARK: - Pieces

    private static func wrap(title: String, _ body: String, width: Double = size.width, height: Double = size.height) -> String {
        "<svg class=\"chart\" role=\"img\" width=\"\(n(width))\" height=\"\(n(height))\" viewBox=\"0 0 \(n(width)) \(n(height))\">"
            + "<title>\(HTMLReport.escaped(title))</title>\(body)</svg>"
    }

    private static func frame(title: String, xLabel: String, yLabel: String) -> String {
        let (w, h) = size
        return text(w / 2, 18, title, anchor: "middle", className: "title")
            + text(margin.left + (w - margin.left - margin.right) / 2, h - 8, xLabel, anchor: "middle")
            + "<text x=\"14\" y=\"\(n(margin.top + (h - margin.top - margin.bottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 14 \(n(margin.top + (h - margin.top - margin.bottom) / 2)))\">\(HTMLReport.escaped(yLabel))</text>"
    }

    private static func legend(_ entries: [(String, String)], x: Double, y: Double) -> String {
        entries.enumerated().map { index, entry in
            let top = y + Double(index) * 15
            return "<rect x=\"\(n(x))\" y=\"\(n(top - 8))\" width=\"10\" height=\"10\" fill=\"\(entry.1)\"/>" + text(x + 14, top + 1, entry.0, anchor: "start")
        }.joined()
    }

    private static func ticks(_ range: ClosedRange<Double>) -> [Double] {
        (0...4).map { range.lowerBound + (range.upperBound - range.lowerBound) * Double($0) / 4 }
    }

    private static func label(_ value: Double) -> String { String(format: "%.3g", value) }

    private static func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, _ color: String) -> String {
        "<line x1=\"\(n(x1))\" y1=\"\(n(y1))\" x2=\"\(n(x2))\" y2=\"\(n(y2))\" stroke=\"\(color)\"/>"
    }

    private static func text(_ x: Double, _ y: Double, _ content: String, anchor: String, className: String? = nil) -> String {
        "<text x=\"\(n(x))\" y=\"\(n(y))\" text-anchor=\"\(anchor)\"\(className.map { " class=\"\($0)\"" } ?? "")>\(HTMLReport.escaped(content))</text>"
    }

    private static func shortened(_ text: String, to length: Int) -> String {
        text.count <= length ? text : "…" + text.suffix(length - 1)
    }

    /// A coordinate with two decimals: enough for a pixel, short in the file.
    private static func n(_ value: Double) -> String { String(format: "%.2f", value) }
}

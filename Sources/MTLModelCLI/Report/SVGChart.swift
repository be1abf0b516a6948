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

    /// Horizontal bars, one group per label and one bar per series in it, scaled to the largest
    /// value; `format` prints each value.
    static func bars(title: String, labels: [String], series: [(name: String, values: [Double])],
                     format: (Double) -> String) -> SVGChart {
        let barHeight = 14.0, labelWidth = 190.0, gap = 8.0
        let groupHeight = Double(series.count) * barHeight + gap
        let legendHeight = series.count > 1 ? 16.0 * Double(series.count) : 0
        let width = size.width + 100
        let height = margin.top + legendHeight + Double(max(labels.count, 1)) * groupHeight + 8
        let largest = max(series.flatMap(\.values).filter(\.isFinite).max() ?? 0, 1e-300)
        var body = text(width / 2, 18, title, anchor: "middle", className: "title")
        if series.count > 1 { body += legend(series.enumerated().map { ($1.name, palette[$0 % palette.count]) }, x: labelWidth, y: margin.top + 2) }
        for (index, name) in labels.enumerated() {
            let top = margin.top + legendHeight + Double(index) * groupHeight
            body += text(labelWidth - 6, top + groupHeight / 2 + 2, shortened(name, to: 30), anchor: "end")
            for (s, item) in series.enumerated() {
                let value = index < item.values.count ? item.values[index] : .nan
                let y = top + Double(s) * barHeight
                let length = value.isFinite ? max(0, value) / largest * (width - labelWidth - 90) : 0
                body += "<rect x=\"\(n(labelWidth))\" y=\"\(n(y + 1))\" width=\"\(n(max(length, 0.5)))\" height=\"\(n(barHeight - 2))\" fill=\"\(palette[s % palette.count])\"><title>\(HTMLReport.escaped(name)), \(HTMLReport.escaped(item.name)): \(HTMLReport.escaped(format(value)))</title></rect>"
                body += text(labelWidth + length + 5, y + barHeight - 3, format(value), anchor: "start")
            }
        }
        return SVGChart(svg: wrap(title: title, body, width: width, height: height))
    }

    /// Counts over a grid of `counts.count` × `counts.count` equal bins of [0, range]², shaded by
    /// the logarithm of the count (row i is x, column j is y), with the diagonal.
    static func heatmap(title: String, xLabel: String, yLabel: String, range: Double, counts: [[Int]]) -> SVGChart {
        let plotHeight = size.height - margin.top - margin.bottom, plotWidth = plotHeight
        let bins = Double(max(counts.count, 1)), cell = plotWidth / bins
        let largest = log1p(Double(counts.flatMap { $0 }.max() ?? 0))
        var body = frame(title: title, xLabel: xLabel, yLabel: yLabel)
        for (i, column) in counts.enumerated() {
            for (j, count) in column.enumerated() where count > 0 {
                let opacity = largest > 0 ? 0.12 + 0.88 * log1p(Double(count)) / largest : 0
                body += "<rect x=\"\(n(margin.left + Double(i) * cell))\" y=\"\(n(margin.top + plotHeight - Double(j + 1) * cell))\" width=\"\(n(cell))\" height=\"\(n(cell))\" fill=\"\(palette[0])\" fill-opacity=\"\(n(opacity))\"><title>\(count) samples</title></rect>"
            }
        }
        body += "<rect x=\"\(n(margin.left))\" y=\"\(n(margin.top))\" width=\"\(n(plotWidth))\" height=\"\(n(plotHeight))\" fill=\"none\" stroke=\"#394150\"/>"
        body += "<line x1=\"\(n(margin.left))\" y1=\"\(n(margin.top + plotHeight))\" x2=\"\(n(margin.left + plotWidth))\" y2=\"\(n(margin.top))\" stroke=\"#9aa1ad\" stroke-dasharray=\"4 4\"/>"
        for tick in ticks(0...range) {
            let offset = tick / range * plotWidth
            body += text(margin.left + offset, margin.top + plotHeight + 16, label(tick), anchor: "middle")
            body += text(margin.left - 7, margin.top + plotHeight - offset + 4, label(tick), anchor: "end")
        }
        return SVGChart(svg: wrap(title: title, body))
    }

    /// A forest plot: per row a point and its interval on one horizontal axis, with vertical
    /// reference lines (0, a gate's limit); highlighted rows in red.
    static func forest(title: String, axis: String, rows: [(label: String, value: Double, low: Double, high: Double, highlighted: Bool)],
                       references: [(value: Double, label: String)]) -> SVGChart {
        let rowHeight = 18.0, labelWidth = 250.0, right = 20.0
        let width = size.width + 240
        let height = margin.top + 6 + Double(max(rows.count, 1)) * rowHeight + 40
        let values = rows.flatMap { [$0.low, $0.high, $0.value] } + references.map(\.value)
        // (Reference labels sit above the rows, tick labels below the axis.)
        let finite = values.filter(\.isFinite)
        var low = finite.min() ?? -1, high = finite.max() ?? 1
        if low == high { (low, high) = (low - 1e-4, high + 1e-4) }
        let pad = (high - low) * 0.08
        (low, high) = (low - pad, high + pad)
        func px(_ value: Double) -> Double { labelWidth + (value - low) / (high - low) * (width - labelWidth - right) }
        let bottom = margin.top + Double(rows.count) * rowHeight
        var body = text(8, 18, title, anchor: "start", className: "title")
        for reference in references {
            body += "<line x1=\"\(n(px(reference.value)))\" y1=\"\(n(margin.top - 4))\" x2=\"\(n(px(reference.value)))\" y2=\"\(n(bottom))\" stroke=\"#9aa1ad\" stroke-dasharray=\"4 3\"/>"
            body += text(px(reference.value), margin.top - 8, reference.label, anchor: "middle")
        }
        for (index, row) in rows.enumerated() {
            let y = margin.top + Double(index) * rowHeight + rowHeight / 2
            body += text(labelWidth - 8, y + 4, shortened(row.label, to: 40), anchor: "end")
            guard row.value.isFinite else { continue }
            let color = row.highlighted ? "#c0392b" : palette[0]
            if row.low.isFinite && row.high.isFinite { body += line(px(row.low), y, px(row.high), y, color) }
            body += "<circle cx=\"\(n(px(row.value)))\" cy=\"\(n(y))\" r=\"3.5\" fill=\"\(color)\"><title>\(HTMLReport.escaped(row.label)): \(label(row.value)) [\(label(row.low)), \(label(row.high))]</title></circle>"
        }
        body += line(labelWidth, bottom, width - right, bottom, "#394150")
        for tick in ticks(low...high) {
            body += line(px(tick), bottom, px(tick), bottom + 4, "#394150") + text(px(tick), bottom + 14, label(tick), anchor: "middle")
        }
        body += text(labelWidth + (width - labelWidth) / 2, height - 4, axis, anchor: "middle")
        return SVGChart(svg: wrap(title: title, body, width: width, height: height))
    }

    // MARK: - Pieces

    static func wrap(title: String, _ body: String, width: Double = size.width, height: Double = size.height) -> String {
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

    static func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, _ color: String) -> String {
        "<line x1=\"\(n(x1))\" y1=\"\(n(y1))\" x2=\"\(n(x2))\" y2=\"\(n(y2))\" stroke=\"\(color)\"/>"
    }

    static func text(_ x: Double, _ y: Double, _ content: String, anchor: String, className: String? = nil) -> String {
        "<text x=\"\(n(x))\" y=\"\(n(y))\" text-anchor=\"\(anchor)\"\(className.map { " class=\"\($0)\"" } ?? "")>\(HTMLReport.escaped(content))</text>"
    }

    static func shortened(_ text: String, to length: Int) -> String {
        text.count <= length ? text : "…" + text.suffix(length - 1)
    }

    /// A coordinate with two decimals: enough for a pixel, short in the file.
    static func n(_ value: Double) -> String { String(format: "%.2f", value) }
}

import MTLModel

/// The architecture as a diagram, top to bottom: fields (with vocabulary and mapping) → groups
/// → the field-weighted interaction → shared layers → each task's tower and head → fusion;
/// each box with its width and parameter count.
extension SVGChart {
    private struct Box {
        var x: Double, y: Double, width: Double
        var lines: [String]
        var fill: String
        static let height = 50.0
        var top: (Double, Double) { (x + width / 2, y) }
        var bottom: (Double, Double) { (x + width / 2, y + Box.height) }
    }

    /// The boxes placed so far, top to bottom, and the lines between them.
    private struct Layout {
        static let width = 980.0, gap = 26.0
        var y = 34.0
        var boxes: [Box] = []
        var edges: [((Double, Double), (Double, Double))] = []

        /// Boxes of `boxWidth` each, centred on `xCenter` in rows of at most `perRow`.
        mutating func row(_ items: [[String]], boxWidth: Double, fill: String, perRow: Int = 6, xCenter: Double = width / 2) -> [Box] {
            var placed: [Box] = []
            for start in stride(from: 0, to: items.count, by: perRow) {
                let chunk = items[start..<min(start + perRow, items.count)]
                let total = Double(chunk.count) * boxWidth + Double(chunk.count - 1) * 10
                for (offset, lines) in chunk.enumerated() {
                    placed.append(Box(x: xCenter - total / 2 + Double(offset) * (boxWidth + 10), y: y, width: boxWidth, lines: lines, fill: fill))
                }
                y += Box.height + 10
            }
            y += Self.gap - 10
            boxes += placed
            return placed
        }

        /// One box, below (and joined to) each of `above`.
        @discardableResult
        mutating func box(_ lines: [String], below above: [Box], boxWidth: Double, fill: String, xCenter: Double = width / 2) -> Box {
            let box = row([lines], boxWidth: boxWidth, fill: fill, xCenter: xCenter)[0]
            above.forEach { edges.append(($0.bottom, box.top)) }
            return box
        }
    }

    static func architecture(_ a: Architecture) -> SVGChart {
        var layout = Layout()
        let interaction = inputs(a, &layout)
        var above = [interaction], units = a.bottomInputWidth
        for (index, layer) in a.shared.enumerated() {
            above = [layout.box(["shared.\(index): \(units) → \(layer.units), \(layer.activation.configName)" + (layer.batchNorm ? " + bn" : ""),
                                 Self.count(Self.parameters(units, layer))], below: above, boxWidth: 300, fill: "#f1ecfb")]
            units = layer.units
        }
        let heads = towers(a, below: above, inputWidth: units, &layout)
        layout.box(["fusion: \(a.fusion.type.configName)", a.tasks.map(\.name).joined(separator: ", ")], below: heads, boxWidth: 300, fill: "#eef0f4")
        return SVGChart(svg: drawn(layout))
    }

    /// The fields (with vocabulary and mapping), their groups and the interaction over them.
    private static func inputs(_ a: Architecture, _ layout: inout Layout) -> Box {
        let k = a.embeddingDim
        let shownFields = a.fields.prefix(36)
        var fieldItems = shownFields.map { f in
            [f.name, "\(f.vocabSize) × \(k), \(f.mapping.configName)", Self.count(f.vocabSize * k + (a.linear ? f.vocabSize : 0))]
        }
        if a.fields.count > shownFields.count { fieldItems.append(["… \(a.fields.count - shownFields.count) more fields", ""]) }
        let fields = layout.row(fieldItems, boxWidth: 150, fill: "#e8f0fc")
        let groups = layout.row(a.groups.enumerated().map { g, name in
            [name, a.fields.filter { $0.group == g }.count == 1 ? "1 field" : "\(a.fields.filter { $0.group == g }.count) fields"]
        }, boxWidth: 130, fill: "#eaf6ef")
        for (index, field) in shownFields.enumerated() where field.group < groups.count {
            layout.edges.append((fields[index].bottom, groups[field.group].top))
        }
        return layout.box(["field-weighted interaction: \(a.pairCount) group pairs" + (a.interaction.intra ? " + intra" : ""),
                           "bottom input z: \(a.bottomInputWidth) (\(a.bottomInput.configName))"], below: groups, boxWidth: 360, fill: "#fdf1e6")
    }

    /// Each task's tower and head, side by side below the shared layers; the heads.
    private static func towers(_ a: Architecture, below shared: [Box], inputWidth: Int, _ layout: inout Layout) -> [Box] {
        let width = Layout.width
        let columnWidth = min(300, (width - 20) / Double(max(a.tasks.count, 1)) - 10)
        let towerTop = layout.y
        var heads: [Box] = [], bottom = layout.y
        for (t, task) in a.tasks.enumerated() {
            layout.y = towerTop
            let center = 10 + (columnWidth + 10) * (Double(t) + 0.5) + (width - 20 - (columnWidth + 10) * Double(a.tasks.count)) / 2
            var above = shared, units = inputWidth
            for (index, layer) in task.tower.enumerated() {
                above = [layout.box(["tower.\(task.name).\(index): \(units) → \(layer.units)", Self.count(Self.parameters(units, layer))],
                                    below: above, boxWidth: columnWidth, fill: "#f1ecfb", xCenter: center)]
                units = layer.units
            }
            heads.append(layout.box(["head.\(task.name): \(units) → 1 logit" + (task.useLinear ? " + linear" : ""), Self.count(units + 1)],
                                    below: above, boxWidth: columnWidth, fill: "#fbe9ec", xCenter: center))
            bottom = max(bottom, layout.y)
        }
        layout.y = bottom
        return heads
    }

    /// The SVG of the laid-out boxes and lines.
    private static func drawn(_ layout: Layout) -> String {
        let width = Layout.width
        var body = text(width / 2, 18, "Architecture", anchor: "middle", className: "title")
        for (from, to) in layout.edges {
            body += "<line x1=\"\(n(from.0))\" y1=\"\(n(from.1))\" x2=\"\(n(to.0))\" y2=\"\(n(to.1))\" stroke=\"#b4bac6\"/>"
        }
        for box in layout.boxes {
            body += "<rect x=\"\(n(box.x))\" y=\"\(n(box.y))\" width=\"\(n(box.width))\" height=\"\(n(Box.height))\" rx=\"5\" fill=\"\(box.fill)\" stroke=\"#8d95a3\"/>"
            for (index, line) in box.lines.enumerated() where !line.isEmpty {
                body += text(box.x + box.width / 2, box.y + 15 + Double(index) * 14, shortened(line, to: Int(box.width / 6.2)), anchor: "middle",
                             className: index == 0 ? "box-title" : nil)
            }
        }
        return wrap(title: "Architecture", body, width: width, height: layout.y + 4)
    }

    /// Weights and biases of a dense layer from `input` units (and batch norm's scale and shift).
    private static func parameters(_ input: Int, _ layer: Architecture.DenseLayer) -> Int {
        input * layer.units + layer.units + (layer.batchNorm ? 2 * layer.units : 0)
    }

    /// "1.2M parameters".
    private static func count(_ parameters: Int) -> String {
        let value = Double(parameters)
        let text = value >= 1e9 ? String(format: "%.3gG", value / 1e9) : value >= 1e6 ? String(format: "%.3gM", value / 1e6)
            : value >= 1e3 ? String(format: "%.3gk", value / 1e3) : "\(parameters)"
        return text + " parameters"
    }
}

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

    static func architecture(_ a: Architecture) -> SVGChart {
        let width = 980.0, gap = 26.0
        var boxes: [Box] = [], edges: [((Double, Double), (Double, Double))] = []  // every box drawn, and the lines between them
        var y = 34.0
        /// Boxes of `width` each, centred in rows of at most `perRow`.
        func row(_ items: [[String]], boxWidth: Double, fill: String, perRow: Int = 6, xCenter: Double = width / 2) -> [Box] {
            var placed: [Box] = []
            for start in stride(from: 0, to: items.count, by: perRow) {
                let chunk = items[start..<min(start + perRow, items.count)]
                let total = Double(chunk.count) * boxWidth + Double(chunk.count - 1) * 10
                for (offset, lines) in chunk.enumerated() {
                    placed.append(Box(x: xCenter - total / 2 + Double(offset) * (boxWidth + 10), y: y, width: boxWidth, lines: lines, fill: fill))
                }
                y += Box.height + 10
            }
            y += gap - 10
            boxes += placed
            return placed
        }
        let k = a.embeddingDim
        let shownFields = a.fields.prefix(36)
        var fieldItems = shownFields.map { f in
            [f.name, "\(f.vocabSize) × \(k), \(f.mapping.configName)", Self.count(f.vocabSize * k + (a.linear ? f.vocabSize : 0))]
        }
        if a.fields.count > shownFields.count { fieldItems.append(["… \(a.fields.count - shownFields.count) more fields", ""]) }
        let fields = row(fieldItems, boxWidth: 150, fill: "#e8f0fc")
        let groups = row(a.groups.enumerated().map { g, name in
            [name, a.fields.filter { $0.group == g }.count == 1 ? "1 field" : "\(a.fields.filter { $0.group == g }.count) fields"]
        }, boxWidth: 130, fill: "#eaf6ef")
        for (index, field) in shownFields.enumerated() where field.group < groups.count { edges.append((fields[index].bottom, groups[field.group].top)) }
        let interaction = row([["field-weighted interaction: \(a.pairCount) group pairs" + (a.interaction.intra ? " + intra" : ""),
                                "bottom input z: \(a.bottomInputWidth) (\(a.bottomInput.configName))"]], boxWidth: 360, fill: "#fdf1e6")[0]
        for group in groups { edges.append((group.bottom, interaction.top)) }
        var previous = [interaction], inputWidth = a.bottomInputWidth
        for (index, layer) in a.shared.enumerated() {
            let box = row([["shared.\(index): \(inputWidth) → \(layer.units), \(layer.activation.configName)" + (layer.batchNorm ? " + bn" : ""),
                            Self.count(Self.parameters(inputWidth, layer))]], boxWidth: 300, fill: "#f1ecfb")[0]
            previous.forEach { edges.append(($0.bottom, box.top)) }
            previous = [box]
            inputWidth = layer.units
        }
        let sharedOut = previous, towerInput = inputWidth
        let columnWidth = min(300, (width - 20) / Double(max(a.tasks.count, 1)) - 10)
        let towerTop = y
        var heads: [Box] = [], bottom = y
        for (t, task) in a.tasks.enumerated() {
            y = towerTop
            let center = 10 + (columnWidth + 10) * (Double(t) + 0.5) + (width - 20 - (columnWidth + 10) * Double(a.tasks.count)) / 2
            var above = sharedOut, units = towerInput
            for (index, layer) in task.tower.enumerated() {
                let box = row([["tower.\(task.name).\(index): \(units) → \(layer.units)", Self.count(Self.parameters(units, layer))]],
                              boxWidth: columnWidth, fill: "#f1ecfb", xCenter: center)[0]
                above.forEach { edges.append(($0.bottom, box.top)) }
                above = [box]
                units = layer.units
            }
            let head = row([["head.\(task.name): \(units) → 1 logit" + (task.useLinear ? " + linear" : ""), Self.count(units + 1)]],
                           boxWidth: columnWidth, fill: "#fbe9ec", xCenter: center)[0]
            above.forEach { edges.append(($0.bottom, head.top)) }
            heads.append(head)
            bottom = max(bottom, y)
        }
        y = bottom
        let fusion = row([["fusion: \(a.fusion.type.configName)", a.tasks.map(\.name).joined(separator: ", ")]], boxWidth: 300, fill: "#eef0f4")[0]
        heads.forEach { edges.append(($0.bottom, fusion.top)) }
        var body = text(width / 2, 18, "Architecture", anchor: "middle", className: "title")
        for (from, to) in edges {
            body += "<line x1=\"\(n(from.0))\" y1=\"\(n(from.1))\" x2=\"\(n(to.0))\" y2=\"\(n(to.1))\" stroke=\"#b4bac6\"/>"
        }
        for box in boxes {
            body += "<rect x=\"\(n(box.x))\" y=\"\(n(box.y))\" width=\"\(n(box.width))\" height=\"\(n(Box.height))\" rx=\"5\" fill=\"\(box.fill)\" stroke=\"#8d95a3\"/>"
            for (index, line) in box.lines.enumerated() where !line.isEmpty {
                body += text(box.x + box.width / 2, box.y + 15 + Double(index) * 14, shortened(line, to: Int(box.width / 6.2)), anchor: "middle",
                             className: index == 0 ? "box-title" : nil)
            }
        }
        return SVGChart(svg: wrap(title: "Architecture", body, width: width, height: y + 4))
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

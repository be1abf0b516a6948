import MTLModel

/// `diff --html`: what changed between two models. The architecture and metadata in words;
/// per changed tensor its relative L2 change and max |Δ|; per table the distribution of per-row
/// change (and its percentiles over the rows that changed), the most changed ids; with
/// `--data`, per task the distribution of |Δp|, the two models' probabilities against each
/// other, ΔAUC with its interval and the overlap of the top 1%.
enum DiffReport {
    static func make(a: String, b: String, _ report: ModelDiffReport) -> HTMLReport {
        var html = HTMLReport(title: report.equal ? "Equal models" : "What changed", subtitle: "\(a) → \(b)")
        html.paragraph(report.equal ? "The models are equal within tolerance." : "The models differ.")
        if !report.architecture.isEmpty || !report.metadata.isEmpty {
            html.heading("Architecture and metadata")
            html.table(["what", "change"], report.architecture.map { ["architecture", $0] } + report.metadata.map { ["metadata", $0] })
        }
        if !report.onlyInA.isEmpty || !report.onlyInB.isEmpty {
            html.heading("Tensors in one model only")
            // Grouped by kind (`optimizer`, `stats`, …): a training checkpoint against its serving
            // form lists every optimizer slot.
            for (names, model) in [(report.onlyInA, a), (report.onlyInB, b)] where !names.isEmpty {
                var groups: [String: [String]] = [:]
                for name in names { groups[String(name.prefix { $0 != "." }), default: []].append(name) }
                for kind in groups.keys.sorted() {
                    let members = groups[kind]!
                    html.folded("\(members.count) \(kind) tensor\(members.count == 1 ? "" : "s") only in \(model)", ["tensor"], members.map { [$0] })
                }
            }
        }
        tensors(&html, report)
        tables(&html, report)
        if let predictions = report.predictions { self.predictions(&html, predictions) }
        return html
    }

    private static func tensors(_ html: inout HTMLReport, _ report: ModelDiffReport) {
        let changed = report.tensors.filter { !$0.equal }
        html.heading("Tensors: \(changed.count) of \(report.tensors.count) differ")
        let measured = changed.filter { $0.relativeL2Change != nil }.sorted { ($0.relativeL2Change ?? 0) > ($1.relativeL2Change ?? 0) }.prefix(40)
        if !measured.isEmpty {
            html.charts([.bars(title: "Relative L2 change ‖b − a‖ / ‖a‖ (the 40 largest)", labels: measured.map(\.name),
                               series: [("relative L2 change", measured.map { $0.relativeL2Change ?? .nan })], format: { Format.number($0) }),
                         .bars(title: "Max |Δ| (the same tensors)", labels: measured.map(\.name),
                               series: [("max |Δ|", measured.map { $0.maxAbsoluteDifference ?? .nan })], format: { Format.number($0) })])
        }
        if !changed.isEmpty {
            html.table(["tensor", "dtypes", "max |Δ|", "rel. L2 change", "cosine", "beyond tol."], changed.map { t in
                guard t.sameShape else { return [t.name, DiffCommand.dtypes(t), "shape \(t.shapeA) → \(t.shapeB)", "-", "-", "-"] }
                if let count = t.changedElementCount {
                    let change = t.valueA.map { "\($0) → \(t.valueB ?? "")" } ?? "\(count) of \(t.shapeA.reduce(1, *)) elements differ"
                    return [t.name, DiffCommand.dtypes(t), change, "-", "-", "-"]
                }
                return [t.name, DiffCommand.dtypes(t), Format.number(t.maxAbsoluteDifference),
                        Format.number(t.relativeL2Change), Format.number(t.cosineSimilarity), Format.number(t.fractionBeyondTolerance)]
            })
        }
    }

    private static func tables(_ html: inout HTMLReport, _ report: ModelDiffReport) {
        guard !report.tables.isEmpty else { return }
        html.heading("Embedding tables, row by row")
        html.table(["table", "by", "rows", "added", "removed", "changed", "unchanged", "p50 / p99 of changed rows", "max"], report.tables.map { t in
            [t.field, t.keyed ? "key" : "row", "\(t.rowsA) → \(t.rowsB)", "\(t.added)", "\(t.removed)", "\(t.changed)", "\(t.unchanged)",
             "\(Format.number(t.p50ChangedRelativeChange)) / \(Format.number(t.p99ChangedRelativeChange))", Format.number(t.maxRelativeChange)]
        })
        let edges = TableComparison.changeHistogramEdges.map { Format.number(Double($0)) }
        let labels = ["no change"] + ["< " + edges[0]] + zip(edges, edges.dropFirst()).map { "\($0)–\($1)" } + ["≥ " + edges.last!]
        html.charts(report.tables.compactMap { t in
            t.changeHistogram.map { .bars(title: "Rows of \(t.field) by relative change", labels: labels, series: [("rows", $0.map(Double.init))],
                                          format: { String(Int($0)) }) }
        })
        html.charts(report.tables.compactMap { t in
            guard let bins = t.changeByFrequency, !bins.isEmpty else { return nil }
            return .bars(title: "Mean change of \(t.field)'s rows by training count", labels: bins.map { bin in
                bin.minCount == bin.maxCount ? "seen \(bin.minCount)× (\(bin.rows) rows)" : "seen \(bin.minCount)–\(bin.maxCount)× (\(bin.rows) rows)"
            }, series: [("mean relative change", bins.map { $0.meanRelativeChange ?? .nan })], format: { Format.number($0) })
        })
        for t in report.tables {
            let what = t.keyed ? "ids" : "rows"
            if let top = t.topChanged, !top.isEmpty {
                html.paragraph("Most changed \(what) of \(t.field):")
                html.table([t.keyed ? "id" : "row", "relative change"], top.map { [String($0.id), Format.number($0.relativeChange)] })
            }
            for (list, count, verb) in [(t.addedIDs, t.added, "added"), (t.removedIDs, t.removed, "removed")] {
                guard let list, !list.isEmpty else { continue }
                html.folded("\(count) \(what) of \(t.field) \(verb)" + (count > list.count ? " (the first \(list.count) listed)" : ""),
                            [t.keyed ? "id" : "row"], list.map { [$0] })
            }
        }
    }

    private static func predictions(_ html: inout HTMLReport, _ predictions: QualityComparison) {
        html.heading("Predictions on \(predictions.sampleCount) samples")
        html.table(["task", "mean |Δp|", "p99 |Δp|", "max |Δp|", "rank corr.", "top 1% overlap", "AUC a", "AUC b", "ΔAUC 95% CI"], predictions.tasks.map { t in
            [t.task, Format.number(t.meanAbsoluteDeltaP), Format.number(t.p99AbsoluteDeltaP), Format.number(t.maxAbsoluteDeltaP),
             Format.number(t.rankCorrelation), Format.number(t.topKOverlap), Format.number(t.before.auc), Format.number(t.after.auc),
             t.deltaAUCLow.map { "\(Format.number(t.deltaAUC)) [\(Format.number($0)), \(Format.number(t.deltaAUCHigh))]" } ?? "-"]
        })
        let edges = QualityComparison.deltaPHistogramEdges.map { Format.number($0) }
        let labels = ["no change"] + ["< " + edges[0]] + zip(edges, edges.dropFirst()).map { "\($0)–\($1)" } + ["≥ " + edges.last!]
        for t in predictions.tasks {
            var charts: [SVGChart] = []
            if let histogram = t.deltaPHistogram {
                charts.append(.bars(title: "Samples by |Δp|, \(t.task)", labels: labels, series: [("samples", histogram.map(Double.init))],
                                    format: { String(Int($0)) }))
            }
            if let joint = t.jointCounts, let range = t.jointRange {
                charts.append(.heatmap(title: "p of a against p of b, \(t.task)", xLabel: "p (a)", yLabel: "p (b)", range: range, counts: joint))
            }
            html.charts(charts)
        }
    }
}

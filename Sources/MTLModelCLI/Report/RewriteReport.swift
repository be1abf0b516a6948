import MTLModel

/// `quantize --html` and `convert --html`: what the rewrite cost. Sizes by section before and
/// after, each quantized tensor's reconstruction error; with `--eval`, the comparison of the
/// two models per task, each step alone as a forest plot of ΔAUC intervals beside the gate's
/// limit, and each task's reliability diagram before and after.
enum RewriteReport {
    struct Input {
        var title: String
        var input: String
        var output: String
        var written: Bool
        var sections: [QuantizationReport.SectionSize]
        var total: QuantizationReport.SectionSize
        var changes: [QuantizationReport.TensorChange]
        var outcome: QualityGate.Outcome
        var maxAUCDrop: Double?
    }

    static func make(_ r: Input) -> HTMLReport {
        var report = HTMLReport(title: r.title, subtitle: "\(r.input) → \(r.output)" + (r.written ? "" : " (not written: the gate failed)"))
        if let verdict = r.outcome.verdict {
            report.paragraph(verdict.passed ? "Gate: passed." : "Gate: FAILED, nothing written: " + verdict.failures.joined(separator: "; "))
        }
        // The deploy question first: what it costs on predictions, and which step costs it.
        if let comparison = r.outcome.comparison { evaluation(&report, comparison, r) }
        report.heading("Sizes")
        let sections = r.sections + [r.total]
        report.charts([.bars(title: "Bytes by section", labels: sections.map(\.section),
                             series: [("before", sections.map { Double($0.byteCountBefore) }), ("after", sections.map { Double($0.byteCountAfter) })],
                             format: { Format.bytes(UInt64(max(0, $0))) })])
        if !r.changes.isEmpty {
            report.heading("Reconstruction error per tensor")
            report.charts([.bars(title: "Per-row relative error ‖x − x̂‖ / ‖x‖", labels: r.changes.map(\.name),
                                 series: [("mean", r.changes.map(\.meanRelativeError)), ("max", r.changes.map(\.maxRelativeError))],
                                 format: { Format.number($0) })])
            report.table(["tensor", "dtype", "rows", "bytes before", "bytes after", "mean rel. error", "max rel. error"], r.changes.map { c in
                [c.name, "\(c.dtypeBefore) → \(c.dtypeAfter)", "\(c.rowCount)", Format.bytes(c.byteCountBefore), Format.bytes(c.byteCountAfter),
                 Format.number(c.meanRelativeError), Format.number(c.maxRelativeError)]
            })
        }
        return report
    }

    private static func evaluation(_ report: inout HTMLReport, _ comparison: QualityComparison, _ r: Input) {
        report.heading("Predictions on \(comparison.sampleCount) samples")
        report.table(["task", "AUC before", "AUC after", "ΔAUC", "ΔAUC 95% CI", "Δlogloss", "Δcalibration", "max |Δp|"], comparison.tasks.map { t in
            [t.task, Format.number(t.before.auc), Format.number(t.after.auc), Format.number(t.deltaAUC), interval(t),
             Format.number(t.deltaLogloss), Format.number(t.deltaCalibration), Format.number(t.maxAbsoluteDeltaP)]
        })
        let steps = (r.outcome.attribution?.steps ?? []).map { ($0.name, $0.comparison, $0.failures) }
            + [("all steps", comparison, r.outcome.verdict?.failures ?? [])]
        var rows: [(label: String, value: Double, low: Double, high: Double, highlighted: Bool)] = []
        for (name, stepComparison, failures) in steps {
            for t in stepComparison.tasks {
                // Red: the task this step fails the gate on.
                let failing = failures.contains { $0.hasPrefix("\(t.task): ") }
                rows.append(("\(name): \(t.task)", t.deltaAUC ?? .nan, t.deltaAUCLow ?? .nan, t.deltaAUCHigh ?? .nan, failing))
            }
        }
        report.heading("Each step alone: ΔAUC with its paired 95% interval")
        if let failing = r.outcome.attribution?.steps.filter({ !$0.failures.isEmpty }), !failing.isEmpty {
            report.paragraph("Fails the gate alone: " + failing.map { "\($0.name) (\($0.failures.joined(separator: "; ")))" }.joined(separator: "; "))
        }
        report.charts([.forest(title: "ΔAUC per step and task", axis: "ΔAUC (after − before)", rows: rows,
                               references: [(0, "0")] + (r.maxAUCDrop.map { [(-$0, "gate −\(Format.number($0))")] } ?? []))])
        if let attribution = r.outcome.attribution {
            report.table(["step", "task", "ΔAUC", "ΔAUC 95% CI", "Δlogloss", "Δcalibration", "max |Δp|"], attribution.steps.flatMap { step in
                step.comparison.tasks.map { t in
                    [step.name, t.task, Format.number(t.deltaAUC), interval(t), Format.number(t.deltaLogloss), Format.number(t.deltaCalibration),
                     Format.number(t.maxAbsoluteDeltaP)]
                }
            })
        }
        report.heading("Calibration before and after")
        report.charts(comparison.tasks.compactMap { t in
            guard let before = t.reliabilityBefore, let after = t.reliabilityAfter else { return nil }
            let top = min(1, 1.1 * ((before.bins + after.bins).map { max($0.meanPrediction, $0.positiveRate) }.max() ?? 1))
            return .plot(title: "Reliability, \(t.task)", xLabel: "mean predicted probability", yLabel: "observed positive rate",
                         x: 0...max(top, 1e-6), y: 0...max(top, 1e-6),
                         series: [.init(name: "before", x: before.bins.map(\.meanPrediction), y: before.bins.map(\.positiveRate),
                                        weights: before.bins.map { Double($0.count) }, color: SVGChart.palette[0]),
                                  .init(name: "after", x: after.bins.map(\.meanPrediction), y: after.bins.map(\.positiveRate),
                                        weights: after.bins.map { Double($0.count) }, color: SVGChart.palette[1])],
                         diagonal: true)
        })
    }

    private static func interval(_ t: QualityComparison.Task) -> String {
        t.deltaAUCLow.map { "[\(Format.number($0)), \(Format.number(t.deltaAUCHigh))]" } ?? "-"
    }
}

import MTLModel

/// `eval --html`: the metrics table, then per task its ROC curve and reliability diagram (the
/// calibration bins with their counts), and the fused score's AUC against each task's labels.
enum EvalReport {
    static func make(model: String, data: String, evaluation: Evaluation?, grouped: Bool, metrics: [TaskMetrics], sampleCount: Int) -> HTMLReport {
        var report = HTMLReport(title: "Evaluation", subtitle: "\(model) on \(data): \(sampleCount) samples")
        report.heading("Metrics per task")
        report.table(["task", "samples", "positives", "AUC", "logloss", "mean prediction", "mean label", "calibration", "fused score AUC"]
                        + (grouped ? ["group AUC", "groups with both classes", "their samples"] : []),
                     metrics.map { m in
            [m.task, "\(m.samples)", "\(m.positives)", Format.number(m.auc), Format.number(m.logloss), Format.number(m.meanPrediction),
             Format.number(m.meanLabel), Format.number(m.calibration), Format.number(m.fusedAUC)]
                + (grouped ? [Format.number(m.groupAUC), "\(m.groupAUCGroups ?? 0)", "\(m.groupAUCSamples ?? 0)"] : [])
        })
        if grouped {
            report.paragraph("Group AUC: the AUC within each group (the samples sharing the group field's first id) that holds both classes, "
                             + "weighted by its samples — the metric of ranking within a user.")
        }
        guard let evaluation else { return report }
        for (t, m) in metrics.enumerated() {
            let (roc, reliability) = (evaluation.roc[t], evaluation.reliability[t])
            report.heading("Task \(m.task)")
            var charts: [SVGChart] = []
            if let roc {
                charts.append(.plot(title: "ROC, \(m.task)", xLabel: "false positive rate", yLabel: "true positive rate",
                                    series: [.init(name: "AUC \(Format.number(m.auc))", x: roc.falsePositiveRates, y: roc.truePositiveRates,
                                                   color: SVGChart.palette[t % SVGChart.palette.count])], diagonal: true))
            } else {
                report.paragraph("No ROC curve: the labels of \(m.task) hold one class only.")
            }
            let bins = reliability.bins
            let top = min(1, 1.1 * (bins.map { max($0.meanPrediction, $0.positiveRate) }.max() ?? 1))
            charts.append(.plot(title: "Reliability, \(m.task)", xLabel: "mean predicted probability", yLabel: "observed positive rate",
                                x: 0...max(top, 1e-6), y: 0...max(top, 1e-6),
                                series: [.init(name: "\(bins.count) bins of equal counts", x: bins.map(\.meanPrediction), y: bins.map(\.positiveRate),
                                               weights: bins.map { Double($0.count) }, color: SVGChart.palette[t % SVGChart.palette.count])],
                                diagonal: true))
            report.charts(charts)
            report.table(["predictions from", "to", "samples", "mean prediction", "positive rate"], reliability.bins.map { bin in
                [Format.number(bin.lower), Format.number(bin.upper), "\(bin.count)", Format.number(bin.meanPrediction), Format.number(bin.positiveRate)]
            })
        }
        return report
    }
}

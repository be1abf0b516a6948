import ArgumentParser
import MTLModel

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Per task: samples, positives, AUC, logloss, calibration; and the fused score's AUC per task.",
        discussion: "Examples:\n  mtl-model eval model.mtlm test.txt --html eval.html"
    )

    @OptionGroup var dataset: DatasetOptions

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @Option(help: "Also write the report as one self-contained HTML file: per task its ROC curve and reliability diagram.")
    var html: String?

    @Option(help: ArgumentHelp("Also the group AUC (GAUC) of groups by this field's first id in a sample (a user): the AUC within each group holding both classes, weighted by its samples.", valueName: "field"))
    var groupBy: String?

    func run() throws {
        var evaluator: Evaluator?
        let reader = try dataset.forEachBatch(opened: { predictor in
            evaluator = Evaluator(taskNames: predictor.architecture.tasks.map(\.name), groupField: try groupField(predictor.architecture))
        }) { batch, predictions, _ in
            try evaluator!.add(batch, predictions)
        }
        let names = try evaluator?.taskNames ?? ModelFile(path: dataset.model).architecture.tasks.map(\.name)
        let evaluation = try evaluator?.finish(roc: html != nil)
        let metrics = evaluation?.metrics ?? names.map { TaskMetrics(task: $0, samples: 0, positives: 0) }
        let sampleCount = evaluator?.sampleCount ?? 0
        if let html {
            try EvalReport.make(model: dataset.model, data: dataset.data, evaluation: evaluation, grouped: groupBy != nil, metrics: metrics,
                                sampleCount: sampleCount).write(to: html)
        }
        if json {
            try Terminal.json(Output(sampleCount: sampleCount, skippedLineCount: reader.skippedLineCount, tasks: metrics))
            return
        }
        Terminal.output("\(sampleCount) samples" + (reader.skippedLineCount > 0 ? ", \(reader.skippedLineCount) invalid lines skipped" : ""))
        let grouped = groupBy.map { ["gauc by \($0)", "groups"] } ?? []
        Terminal.output(Format.table(["task", "samples", "positives", "auc", "logloss", "mean pred", "mean label", "calibration", "fused auc"] + grouped,
                                     metrics.map { m in
            [m.task, "\(m.samples)", "\(m.positives)", Format.number(m.auc), Format.number(m.logloss), Format.number(m.meanPrediction),
             Format.number(m.meanLabel), Format.number(m.calibration), Format.number(m.fusedAUC)]
                + (groupBy == nil ? [] : [Format.number(m.groupAUC), "\(m.groupAUCGroups ?? 0)"])
        }))
    }

    /// The index of `--group-by`'s field, or an error naming the fields there are.
    private func groupField(_ architecture: Architecture) throws -> Int? {
        guard let groupBy else { return nil }
        guard let index = architecture.fields.firstIndex(where: { $0.name == groupBy }) else {
            throw MTLModelError(.invalidArgument, "--group-by: no field named \"\(groupBy)\" (fields: \(architecture.fields.map(\.name).joined(separator: ", ")))")
        }
        return index
    }

    struct Output: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var sampleCount: Int
        var skippedLineCount: Int
        var tasks: [TaskMetrics]
    }
}

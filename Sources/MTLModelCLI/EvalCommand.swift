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

    func run() throws {
        var evaluator: Evaluator?
        let reader = try dataset.forEachBatch { batch, predictions, predictor in
            if evaluator == nil { evaluator = Evaluator(taskNames: predictor.architecture.tasks.map(\.name)) }
            evaluator!.add(batch, predictions)
        }
        let names = try evaluator?.taskNames ?? ModelFile(path: dataset.model).architecture.tasks.map(\.name)
        let metrics = evaluator?.metrics() ?? names.map { TaskMetrics(task: $0, samples: 0, positives: 0) }
        let sampleCount = evaluator?.sampleCount ?? 0
        if let html {
            try EvalReport.make(model: dataset.model, data: dataset.data, evaluator: evaluator, metrics: metrics, sampleCount: sampleCount).write(to: html)
        }
        if json {
            try Terminal.json(Output(sampleCount: sampleCount, skippedLineCount: reader.skippedLineCount, tasks: metrics))
            return
        }
        Terminal.output("\(sampleCount) samples" + (reader.skippedLineCount > 0 ? ", \(reader.skippedLineCount) invalid lines skipped" : ""))
        Terminal.output(Format.table(["task", "samples", "positives", "auc", "logloss", "mean pred", "mean label", "calibration", "fused auc"],
                                     metrics.map { m in
            [m.task, "\(m.samples)", "\(m.positives)", Format.number(m.auc), Format.number(m.logloss), Format.number(m.meanPrediction),
             Format.number(m.meanLabel), Format.number(m.calibration), Format.number(m.fusedAUC)]
        }))
    }

    struct Output: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var sampleCount: Int
        var skippedLineCount: Int
        var tasks: [TaskMetrics]
    }
}

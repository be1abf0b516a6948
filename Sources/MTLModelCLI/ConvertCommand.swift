import ArgumentParser
import Foundation
import MTLModel

struct ConvertCommand: RewritingCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert between the training form (optimizer state, learned loss weights) and the serving form.",
        discussion: """
            --to serving drops optimizer slots, step, row counts and loss.log_var, and freezes the loss \
            weighting: the architecture's loss section records the learned log-variances and the per-task \
            weights they imply, marked frozen. --to training writes float32 weights (dequantized), fresh \
            optimizer slots (kept when the model has them for that optimizer), loss.log_var from the frozen \
            values, and unfreezes the loss weighting. With --eval, both models score the data (and a gate \
            option can refuse the output, exit 1).

            Examples:
              mtl-model convert ckpt.mtlm serving.mtlm --to serving --fold-batch-norm --embeddings int8 --dense fp16 --eval test.txt --max-auc-drop 0.0005 --html review.html
              mtl-model convert serving.mtlm warm.mtlm --to training --optimizer adagrad
            """
    )

    enum Form: String, ExpressibleByArgument, CaseIterable { case serving, training }

    @Argument(help: "The .mtlm model to convert.")
    var input: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @Option(help: "The form to write: serving or training.")
    var to: Form

    @Flag(help: "Serving: fold batch norm into the dense layers (predictions unchanged within MODEL.md's tolerance).")
    var foldBatchNorm = false

    @Flag(help: "Serving: remove the rows of keyed tables that training never saw (row count 0; needs stats.{field}.count).")
    var pruneUnseen = false

    @OptionGroup(title: "Serving: types (unset: kept as stored)") var types: QuantizationOptions

    @Option(help: "Training: the optimizer whose slots to create, adagrad, adam, ftrl or sgd (default: the one the model records).")
    var optimizer: String?

    @OptionGroup(title: "Checking predictions") var gate: QualityGateOptions

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func validate() throws {
        switch to {
        case .serving:
            if optimizer != nil { throw ValidationError("--optimizer applies to --to training") }
            _ = try types.plan()
        case .training:
            if foldBatchNorm || pruneUnseen || !types.isEmpty {
                throw ValidationError("--fold-batch-norm, --prune-unseen, --embeddings, --dense and --field apply to --to serving")
            }
            if let optimizer, Architecture.OptimizerType(named: optimizer) == nil {
                throw ValidationError("--optimizer must be adagrad, adam, ftrl or sgd, got '\(optimizer)'")
            }
        }
    }

    func job(_ model: Model) throws -> RewriteJob<ConversionReport> {
        var converter = ModelConverter(threadCount: gate.threads)
        converter.source = Invocation.commandLine
        switch to {
        case .serving:
            var options = ModelConverter.ServingOptions()
            options.foldBatchNorm = foldBatchNorm
            options.pruneUnseen = pruneUnseen
            options.quantization = types.isEmpty ? nil : try types.plan()
            return try converter.servingJob(model, options: options)
        case .training:
            return try converter.trainingJob(model, optimizer: optimizer.flatMap(Architecture.OptimizerType.init(named:)))
        }
    }

    func conclude(_ model: Model, _ report: ConversionReport, _ pending: PendingOutput, steps: [StepAttribution.Variant]) throws -> Bool {
        let outcome = try gate.gate.check(model, against: pending, steps: steps)
        if let html = gate.html {
            try RewriteReport.make(.init(title: "Conversion to the \(report.form) form", input: input, output: output, written: outcome.passed,
                                         sections: report.sections, total: report.total, changes: report.quantized, outcome: outcome,
                                         maxAUCDrop: gate.maxAUCDrop)).write(to: html)
        }
        if json {
            try Terminal.json(Output(input: input, output: output, written: outcome.passed, report: report,
                                     evaluation: outcome.comparison, steps: outcome.attribution?.steps, gate: outcome.verdict))
        } else {
            Terminal.output((render(report) + outcome.rendered).joined(separator: "\n"))
        }
        return outcome.passed
    }

    struct Output: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var input: String
        var output: String
        var written: Bool
        var report: ConversionReport
        var evaluation: QualityComparison?
        /// Each step alone (`--eval`, more than one step).
        var steps: [StepAttribution.Step]?
        var gate: QualityGate.Verdict?
    }

    private func render(_ report: ConversionReport) -> [String] {
        var lines = ["wrote the \(report.form) form to \(TerminalText.escaped(output))"]
        if !report.removed.isEmpty {
            let bytes = report.removed.reduce(UInt64(0)) { $0 + $1.byteCount }
            lines.append("removed \(report.removed.count) tensors (\(Format.bytes(bytes))): "
                         + report.removed.map { TerminalText.escaped($0.name) }.joined(separator: ", "))
        }
        if !report.added.isEmpty {
            lines.append("added \(report.added.count) tensors: " + report.added.map { tensor in
                TerminalText.escaped(tensor.name) + (tensor.initialValue.map { " = \(Format.number($0))" } ?? "")
            }.joined(separator: ", "))
        }
        if !report.kept.isEmpty { lines.append("kept from the input: " + report.kept.joined(separator: ", ")) }
        for fold in report.foldedBatchNorm { lines.append("folded the batch norm of \(fold.layer) into \(fold.into.joined(separator: ", "))") }
        for table in report.prunedTables {
            lines.append("pruned \(table.field): \(table.rowsBefore) → \(table.rowsAfter) rows (\(table.rowsBefore - table.rowsAfter) never seen)")
        }
        if let loss = report.loss {
            var text = "loss weighting \(loss.weighting)\(loss.convention.isEmpty ? "" : " (\(loss.convention))"), \(loss.frozen ? "frozen" : "learned")"
            if !loss.values.isEmpty { text += ": log-variances " + loss.values.map { Format.number($0) }.joined(separator: ", ") }
            if !loss.weights.isEmpty { text += "; task weights " + loss.weights.map { Format.number($0) }.joined(separator: ", ") }
            lines.append(text)
        }
        if let optimizer = report.optimizer { lines.append("optimizer: \(optimizer)") }
        if !report.quantized.isEmpty {
            lines.append("")
            lines.append(Format.dtypeChanges(report.quantized))
        }
        lines.append("")
        lines.append(Format.sizes(report.sections, total: report.total))
        return lines
    }
}

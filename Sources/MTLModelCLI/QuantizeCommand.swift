import ArgumentParser
import Foundation
import MTLModel

struct QuantizeCommand: RewritingCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Shrink a model's tables and dense layers, and check on real predictions what it cost.",
        discussion: """
            Embedding tables per row (int8: uint8 + float32 scale and bias; int4: 4-bit + float16 scale \
            and bias, clipping range searched), dense weights as fp16 / bf16 or int8 with one scale per \
            output channel. First-order tables take float16 when int8 or int4 is asked (one value per row: \
            a scale and bias would cost more than they save). With a gate option and --eval, nothing is \
            written and the exit code is 1 when the gate fails.

            Examples:
              mtl-model quantize model.mtlm int8.mtlm --embeddings int8 --eval test.txt --max-auc-drop 0.0005
            """
    )

    @Argument(help: "The .mtlm model to quantize.")
    var input: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @OptionGroup(title: "Types") var types: QuantizationOptions

    @OptionGroup(title: "Checking predictions") var gate: QualityGateOptions

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func plan() throws -> QuantizationPlan {
        try types.plan(embeddings: .int8Rowwise, dense: .float16)
    }

    func validate() throws {
        _ = try plan()
    }

    func job(_ model: Model) throws -> RewriteJob<QuantizationReport> {
        try ModelQuantizer(plan: try plan(), threadCount: gate.threads).job(model, source: Invocation.commandLine)
    }

    func conclude(_ model: Model, _ report: QuantizationReport, _ pending: PendingOutput, steps: [StepAttribution.Variant]) throws -> Bool {
        var report = report
        let outcome = try gate.gate.check(model, against: pending, steps: steps)
        report.evaluation = outcome.comparison
        if let html = gate.html {
            try RewriteReport.make(.init(title: "Quantization", input: input, output: output, written: outcome.passed, sections: report.sections,
                                         total: report.total, changes: report.tensors, outcome: outcome, maxAUCDrop: gate.maxAUCDrop)).write(to: html)
        }
        if json {
            try Terminal.json(Output(input: input, output: output, written: outcome.passed, report: report, steps: outcome.attribution?.steps,
                                     gate: outcome.verdict))
        } else {
            Terminal.output(render(report, outcome: outcome))
        }
        return outcome.passed
    }

    struct Output: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var input: String
        var output: String
        var written: Bool
        var report: QuantizationReport
        /// Each step alone (`--eval`, more than one step).
        var steps: [StepAttribution.Step]?
        var gate: QualityGate.Verdict?
    }

    private func render(_ report: QuantizationReport, outcome: QualityGate.Outcome) -> String {
        var lines: [String] = []
        lines.append(Format.sizes(report.sections, total: report.total))
        if !report.tensors.isEmpty {
            lines.append("")
            lines.append(Format.dtypeChanges(report.tensors))
        }
        lines += outcome.rendered
        return lines.joined(separator: "\n")
    }
}

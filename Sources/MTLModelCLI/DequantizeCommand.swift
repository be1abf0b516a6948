import ArgumentParser
import Foundation
import MTLModel

struct DequantizeCommand: RewritingCommand {
    static let configuration = CommandConfiguration(
        commandName: "dequantize",
        abstract: "Decode every quantized or half-precision tensor back to float32 (to warm-start training).",
        discussion: "Examples:\n  mtl-model dequantize serving-int8.mtlm float32.mtlm"
    )

    @Argument(help: "The .mtlm model.")
    var input: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func job(_ model: Model) throws -> RewriteJob<QuantizationReport> {
        try ModelQuantizer(plan: .float32).job(model, source: Invocation.commandLine)
    }

    func conclude(_ model: Model, _ report: QuantizationReport, _ pending: PendingOutput, steps: [StepAttribution.Variant]) throws -> Bool {
        try pending.commit()
        Terminal.output("wrote \(TerminalText.escaped(output)): \(report.tensors.count) tensors decoded to float32, \(Format.bytes(report.total.byteCountBefore)) → \(Format.bytes(report.total.byteCountAfter))")
        return true
    }
}

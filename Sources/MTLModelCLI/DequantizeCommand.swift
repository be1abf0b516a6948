import ArgumentParser
import Foundation
import MTLModel

struct DequantizeCommand: RewritingCommand {
    static let configuration = CommandConfiguration(
        commandName: "dequantize",
        abstract: "Decode every quantized or half-precision tensor back to float32 (to warm-start training).",
        discussion: "Examples:\n  mtl-model dequantize serving-int8.mtlm float32.mtlm --threads 2"
    )

    @Argument(help: "The .mtlm model.")
    var input: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @Option(help: "Threads: checking the input, windows of rows decoded and written at once.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func job(_ model: Model) throws -> RewriteJob<QuantizationReport> {
        try ModelQuantizer(plan: .float32, threadCount: threads).job(model, source: Invocation.commandLine)
    }

    func conclude(_ model: Model, _ report: QuantizationReport, _ pending: PendingOutput, steps: [StepAttribution.Variant]) throws -> Bool {
        try pending.commit()
        Terminal.output("wrote \(TerminalText.escaped(output)): \(report.tensors.count) tensors decoded to float32, \(Format.bytes(report.total.byteCountBefore)) → \(Format.bytes(report.total.byteCountAfter))")
        return true
    }
}

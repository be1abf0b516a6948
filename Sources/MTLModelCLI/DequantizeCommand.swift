import ArgumentParser
import Foundation
import MTLModel

struct DequantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dequantize",
        abstract: "Decode every quantized or half-precision tensor back to float32 (to warm-start training)."
    )

    @Argument(help: "The .mtlm model.")
    var input: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    func run() throws {
        let model = try limits.model(input)
        let pending = try PendingOutput(target: output)
        try conclude(try job(model).write(into: pending), pending)
    }

    private func job(_ model: Model) throws -> RewriteJob<QuantizationReport> {
        try ModelQuantizer(plan: .float32).job(model, source: "dequantize \(input)")
    }

    private func conclude(_ report: QuantizationReport, _ pending: PendingOutput) throws {
        try pending.commit()
        Terminal.output("wrote \(TerminalText.escaped(output)): \(report.tensors.count) tensors decoded to float32, \(Format.bytes(report.total.byteCountBefore)) → \(Format.bytes(report.total.byteCountAfter))")
    }
}

extension DequantizeCommand: PlannableCommand {
    func plan(_ arguments: [String], planPath: String) throws -> TaskPlan {
        try TaskPlan.rewrite(command: arguments, model: limits.model(input), output: output, planPath: planPath)
    }

    func runTask(_ plan: TaskPlan, index: Int) throws -> TaskResult {
        try plan.runRewrite(job(limits.model(input)), index: index)
    }

    func finish(_ plan: TaskPlan) throws {
        _ = try plan.finishRewrite(job(limits.model(input))) { report, pending in
            try conclude(report, pending)
            return true
        }
    }
}

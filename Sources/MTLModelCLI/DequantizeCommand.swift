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
        let report = try ModelQuantizer(plan: .float32).quantize(model, to: output, source: "dequantize \(input)")
        Terminal.output("wrote \(TerminalText.escaped(output)): \(report.tensors.count) tensors decoded to float32, \(Format.bytes(report.total.byteCountBefore)) → \(Format.bytes(report.total.byteCountAfter))")
    }
}

import ArgumentParser
import MTLModel

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a model as safetensors (PyTorch), .npz (numpy) or ONNX (serving engines).",
        discussion: """
            The output's extension selects the format. .safetensors and .npz hold every tensor (float16 \
            as float16 in .npz; bfloat16 and quantized tensors as their float32 values) and the \
            architecture config (safetensors: __metadata__["mtl_model.config"]; npz: the member \
            mtl_model.config.json). A sharded model exported to NAME.safetensors is written as \
            NAME-0000k-of-0000N.safetensors and NAME.safetensors.index.json (a split table's part k is \
            TENSOR.part-0000k-of-0000N, listed in the index's metadata "mtl_model.parts"). .onnx is a graph computing the logits, probabilities and fused \
            score (docs/ONNX.md: its inputs, outputs and a runnable onnxruntime example).

            Examples:
              mtl-model export serving.mtlm serving.onnx
            """
    )

    @Argument(help: "The .mtlm model.")
    var model: String

    @Argument(help: "The file to write: .safetensors, .npz or .onnx.")
    var output: String

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func validate() throws {
        guard [".safetensors", ".npz", ".onnx"].contains(where: output.hasSuffix) else {
            throw ValidationError("unsupported output format: '\(output)' (supported: .safetensors, .npz, .onnx)")
        }
    }

    func run() throws {
        let file = try limits.model(model)
        try progress.run(total: Progress.byteCount(of: [file])) { try export(file) }
    }

    private func export(_ file: Model) throws {
        if output.hasSuffix(".onnx") {
            let report = try ONNXExporter().export(file, to: output)
            let external = report.externalData.map { " + \(TerminalText.escaped($0)) (\(report.externalByteCount) bytes of tensors)" } ?? ""
            Terminal.error("exported \(TerminalText.escaped(model)) → \(TerminalText.escaped(output))\(external): \(report.nodeCount) nodes, inputs \(report.inputs.count), outputs \(report.outputs.joined(separator: ", "))")
            return
        } else if output.hasSuffix(".npz") {
            try NumpyArchiveExporter().export(file, to: output)
        } else {
            let written = try SafetensorsExporter().export(file, to: output)
            if let index = written.index {
                Terminal.error("exported \(TerminalText.escaped(model)) → \(written.files.count) files \(TerminalText.escaped(written.files[0])) … and the index \(TerminalText.escaped(index)): \(written.tensorCount) tensors and parts")
                return
            }
        }
        Terminal.error("exported \(TerminalText.escaped(model)) → \(TerminalText.escaped(output)): \(file.tensors.count) tensors")
    }
}

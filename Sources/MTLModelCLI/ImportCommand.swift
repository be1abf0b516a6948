import ArgumentParser
import MTLModel

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a PyTorch checkpoint saved as safetensors (MODEL.md names, config in its metadata)."
    )

    @Argument(help: "The .safetensors checkpoint.")
    var checkpoint: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @Option(help: "Payload compression: none or zlib.")
    var compression: CompressionOption = .none

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() throws {
        var options = ModelWriter.Options()
        options.compression = compression.value
        let result = try SafetensorsImporter(writerOptions: options).importCheckpoint(checkpoint, to: output)
        if json {
            try Terminal.json(Output(checkpoint: checkpoint, output: output, result: result))
        } else {
            let training = result.trainingStateGroups.isEmpty ? "serving form" : "training state: " + result.trainingStateGroups.joined(separator: ", ")
            Terminal.output("imported \(TerminalText.escaped(checkpoint)) → \(TerminalText.escaped(output)): \(result.tensorCount) tensors, \(result.parameterCount) parameters, \(training)")
        }
    }

    struct Output: Encodable {
        var schemaVersion = 1
        var checkpoint: String
        var output: String
        var result: SafetensorsImporter.Result
    }
}

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a model as safetensors (PyTorch), .npz (numpy) or ONNX (serving engines).",
        discussion: """
            The output's extension selects the format. .safetensors and .npz hold every tensor (float16 \
            as float16 in .npz; bfloat16 and quantized tensors as their float32 values) and the \
            architecture config (safetensors: __metadata__["mtl_model.config"]; npz: the member \
            mtl_model.config.json). .onnx is a graph computing the logits, probabilities and fused \
            score (docs/ONNX.md: its inputs, outputs and a runnable onnxruntime example).
            """
    )

    @Argument(help: "The .mtlm model.")
    var model: String

    @Argument(help: "The file to write: .safetensors, .npz or .onnx.")
    var output: String

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    func validate() throws {
        guard [".safetensors", ".npz", ".onnx"].contains(where: output.hasSuffix) else {
            throw ValidationError("unsupported output format: '\(output)' (supported: .safetensors, .npz, .onnx)")
        }
    }

    func run() throws {
        let file = try limits.model(model)
        if output.hasSuffix(".onnx") {
            let report = try ONNXExporter().export(file, to: output)
            let external = report.externalData.map { " + \(TerminalText.escaped($0)) (\(report.externalByteCount) bytes of tensors)" } ?? ""
            Terminal.error("exported \(TerminalText.escaped(model)) → \(TerminalText.escaped(output))\(external): \(report.nodeCount) nodes, inputs \(report.inputs.count), outputs \(report.outputs.joined(separator: ", "))")
            return
        } else if output.hasSuffix(".npz") {
            try NumpyArchiveExporter().export(file, to: output)
        } else {
            try SafetensorsExporter().export(file, to: output)
        }
        Terminal.error("exported \(TerminalText.escaped(model)) → \(TerminalText.escaped(output)): \(file.tensors.count) tensors")
    }
}

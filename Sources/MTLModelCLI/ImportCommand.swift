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

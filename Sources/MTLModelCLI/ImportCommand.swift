import ArgumentParser
import Foundation
import MTLModel

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import a PyTorch checkpoint saved as safetensors (MODEL.md names, config in its metadata).",
        discussion: "Examples:\n  mtl-model import ckpt.safetensors model.mtlm --strip-prefix module.\n  mtl-model import ckpt.safetensors.index.json model.mtlm --shards 16"
    )

    @Argument(help: "The .safetensors checkpoint, or a sharded one's NAME.safetensors.index.json.")
    var checkpoint: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @Option(help: "Write a sharded model of N shards (format 1.3, as mtl-model shard writes it); 1: one file.")
    var shards: Int = 1

    @Option(help: "Payload compression: none or zlib.")
    var compression: CompressionOption = .none

    @Option(help: "The architecture config JSON (MODEL.md), when the checkpoint's metadata has none or another is wanted.")
    var config: String?

    @Option(help: ArgumentHelp("Remove this prefix from tensor names (repeatable): module. (DistributedDataParallel), _orig_mod. (torch.compile).",
                               valueName: "prefix"))
    var stripPrefix: [String] = []

    @Option(help: ArgumentHelp("Rename tensors whose name starts with FROM to start with TO instead (repeatable; the first match applies, after --strip-prefix).",
                               valueName: "FROM=TO"))
    var rename: [String] = []

    @Flag(name: .customLong("float32"), help: "Store float16 / bfloat16 tensors as float32 (by default half-precision parameters are stored as they are).")
    var float32 = false

    @Flag(help: "Keep NaN, Inf and values whose squares overflow float32 (refused by default; the model will not verify).")
    var allowNonfinite = false

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        for item in rename where !item.contains("=") || item.hasPrefix("=") {
            throw ValidationError("--rename takes FROM=TO with a non-empty FROM, got '\(item)'")
        }
        if stripPrefix.contains("") { throw ValidationError("--strip-prefix takes a non-empty prefix") }
    }

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func run() throws {
        var options = ModelWriter.Options()
        options.compression = compression.value
        var importer = SafetensorsImporter(writerOptions: options)
        importer.widenToFloat32 = float32
        importer.allowNonfinite = allowNonfinite
        importer.shardCount = shards
        importer.source = Invocation.commandLine
        importer.architecture = try config.map { path throws(MTLModelError) in try Architecture(configFile: path) }
        importer.names = .init(renames: rename.map { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (String(parts[0]), String(parts[1]))
        }, strippedPrefixes: stripPrefix)
        let total = (try? FileManager.default.attributesOfItem(atPath: checkpoint)[.size] as? UInt64) ?? 0
        let result = try progress.run(total: checkpoint.hasSuffix(".json") ? 0 : total) { try importer.importCheckpoint(checkpoint, to: output) }
        if json {
            try Terminal.json(Output(checkpoint: checkpoint, output: output, result: result))
        } else {
            let training = result.trainingStateGroups.isEmpty ? "serving form" : "training state: " + result.trainingStateGroups.joined(separator: ", ")
            Terminal.output("imported \(TerminalText.escaped(checkpoint)) → \(TerminalText.escaped(output)): \(result.tensorCount) tensors, \(result.parameterCount) parameters, \(training)")
            for item in result.inferred { Terminal.output("  inferred: \(item)") }
            for note in result.notes { Terminal.output("  note: \(note)") }
        }
    }

    struct Output: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var checkpoint: String
        var output: String
        var result: SafetensorsImporter.Result
    }
}

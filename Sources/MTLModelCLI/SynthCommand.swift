import ArgumentParser
import Foundation
import MTLModel

struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a model with random weights for an architecture config (JSON of MODEL.md).",
        discussion: "Examples:\n  mtl-model synth config.json model.mtlm --seed 1 --training"
    )

    @Argument(help: "The architecture config JSON.")
    var config: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @Option(help: "Seed of the random weights (same seed, same weights).")
    var seed: UInt64 = 0

    @Flag(help: "Add training state: optimizer slots, optimizer.step, loss.log_var, row counts.")
    var training = false

    @Option(help: "Payload compression: none or zlib (per chunk; zlib files cannot be mapped zero-copy).")
    var compression: CompressionOption = .none

    @Option(name: .customLong("metadata"), help: "Free-form metadata KEY=VALUE (repeatable).")
    var metadata: [String] = []

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        for item in metadata where !item.contains("=") {
            throw ValidationError("--metadata takes KEY=VALUE, got '\(item)'")
        }
    }

    func run() throws {
        let architecture = try Architecture(configFile: config)
        var options = ModelWriter.Options()
        options.compression = compression.value
        let synthesizer = Synthesizer(seed: seed, training: training, writerOptions: options)
        let entries = metadata.map { item in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return MetadataEntry(key: String(parts[0]), value: String(parts[1]))
        }
        try synthesizer.write(architecture, to: output,
                              source: Invocation.commandLine,
                              metadata: entries, progress: json ? { _, _ in } : Terminal.progress("synth"))
        let model = try ModelFile(path: output)
        let summary = try ModelSummary(model, includeTensors: false, statistics: false)
        if json {
            try Terminal.json(SynthResult(output: output, fileByteCount: model.fileByteCount,
                                          tensorCount: summary.tensorCount, parameterCount: summary.parameterCount))
        } else {
            Terminal.output("wrote \(TerminalText.escaped(output)): \(summary.tensorCount) tensors, \(summary.parameterCount) parameters, \(Format.bytes(model.fileByteCount))")
        }
    }

    struct SynthResult: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var output: String
        var fileByteCount: UInt64
        var tensorCount: Int
        var parameterCount: UInt64
    }
}

enum CompressionOption: String, ExpressibleByArgument, CaseIterable {
    case none, zlib

    var value: Compression { self == .zlib ? .zlib : .none }
}

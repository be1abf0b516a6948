import ArgumentParser
import Foundation
import MTLModel

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Score a dataset: per sample each task's probability (or logit) and the fused score.",
        discussion: "TSV with a header line (task names, then fused) by default; --json writes one JSON object per line."
    )

    @OptionGroup var dataset: DatasetOptions

    @Option(name: [.short, .customLong("output")], help: "Write to this file instead of standard output (atomically).")
    var output: String?

    @Flag(help: "Write logits instead of probabilities.")
    var logits = false

    @Flag(help: "Write JSON lines ({\"line\": N, task: value, ..., \"fused\": value}).")
    var json = false

    func run() throws {
        let sink = try OutputSink(path: output)
        var headerWritten = false
        _ = try dataset.forEachBatch { batch, predictions, predictor in
            let tasks = predictor.architecture.tasks.map(\.name)
            if !json && !headerWritten {
                try sink.write((tasks + ["fused"]).joined(separator: "\t") + "\n")
                headerWritten = true
            }
            let values = logits ? predictions.logits : predictions.probabilities
            var text = ""
            text.reserveCapacity(batch.count * (tasks.count + 1) * 14)
            for sample in 0..<batch.count {
                if json {
                    text += "{\"line\":\(batch.lineNumbers[sample])"
                    for (t, name) in tasks.enumerated() { text += ",\"\(name)\":\(Self.number(values[sample * tasks.count + t]))" }
                    text += ",\"fused\":\(Self.number(predictions.fused[sample]))}\n"
                } else {
                    for t in 0..<tasks.count { text += Self.number(values[sample * tasks.count + t]) + "\t" }
                    text += Self.number(predictions.fused[sample]) + "\n"
                }
            }
            try sink.write(text)
        }
        if !json && !headerWritten {
            // An empty dataset still gets its header.
            let file = try ModelFile(path: dataset.model)
            try sink.write((file.architecture.tasks.map(\.name) + ["fused"]).joined(separator: "\t") + "\n")
        }
        try sink.finish()
    }

    /// Shortest text that reads back as the same value (JSON-safe: values are finite).
    static func number<T: BinaryFloatingPoint & LosslessStringConvertible>(_ value: T) -> String {
        value.isFinite ? value.description : "null"
    }
}

/// Standard output, or a file written atomically (complete, or not there at all).
final class OutputSink {
    private let file: AtomicOutputFile?

    init(path: String?) throws {
        file = try path.map { path throws(MTLModelError) in try AtomicOutputFile(targetPath: path) }
    }

    func write(_ text: String) throws {
        guard let file else {
            FileHandle.standardOutput.write(Data(text.utf8))
            return
        }
        try file.append(Array(text.utf8))
    }

    func finish() throws {
        try file?.commit()
    }
}

import ArgumentParser
import Foundation
import MTLModel

struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Score a dataset: per sample each task's probability (or logit) and the fused score.",
        discussion: "TSV with a header line (task names, then fused) by default; --json writes one JSON object per line.\n\nExamples:\n  mtl-model predict serving.mtlm requests.txt -o scores.tsv"
    )

    @OptionGroup var dataset: DatasetOptions

    @Option(name: [.short, .customLong("output")], help: "Write to this file instead of standard output: atomically (a temporary file renamed into place); - is standard output, a device or FIFO is written in place.")
    var output: String?

    @Flag(help: "Write logits instead of probabilities.")
    var logits = false

    @Flag(help: "Write JSON lines ({\"line\": N, task: value, ..., \"fused\": value}).")
    var json = false

    func run() throws {
        var sink: OutputSink?
        _ = try dataset.forEachBatch(opened: { predictor in
            sink = try OutputSink(path: output)
            if !json { try sink!.write((predictor.architecture.tasks.map(\.name) + ["fused"]).joined(separator: "\t") + "\n") }
        }) { batch, predictions, predictor in
            let tasks = predictor.architecture.tasks.map(\.name)
            let jsonKeys = tasks.map { ",\"\($0)\":" }
            let values = logits ? predictions.logits : predictions.probabilities
            var text = NumberText(capacity: batch.count * (tasks.count + 1) * 14)
            for sample in 0..<batch.count {
                if json {
                    text.write("{\"line\":")
                    text.write(String(batch.lineNumbers[sample]))
                    for (t, key) in jsonKeys.enumerated() {
                        text.write(key)
                        Self.append(values[sample * tasks.count + t], to: &text)
                    }
                    text.write(",\"fused\":")
                    Self.append(predictions.fused[sample], to: &text)
                    text.write("}\n")
                } else {
                    for t in 0..<tasks.count {
                        Self.append(values[sample * tasks.count + t], to: &text)
                        text.append(byte: UInt8(ascii: "\t"))
                    }
                    Self.append(predictions.fused[sample], to: &text)
                    text.append(byte: UInt8(ascii: "\n"))
                }
            }
            try sink!.write(text.bytes)
        }
        try sink?.finish()
    }

    /// Shortest text that reads back as the same value (JSON-safe: `predict` throws before
    /// a score is not finite, and null stands for one should that ever change).
    static func append<Value: BinaryFloatingPoint & TextOutputStreamable>(_ value: Value, to text: inout NumberText) {
        if value.isFinite { value.write(to: &text) } else { text.write("null") }
    }
}

/// Standard output, or a file written atomically (complete, or not there at all); `-` and
/// devices are written in place (`AtomicOutputFile`).
final class OutputSink {
    private let file: AtomicOutputFile

    init(path: String?) throws {
        file = try AtomicOutputFile(targetPath: path ?? "-")
    }

    func write(_ text: String) throws {
        try file.append(Array(text.utf8))
    }

    func write(_ bytes: [UInt8]) throws {
        try file.append(bytes)
    }

    func finish() throws {
        try file.commit()
    }
}

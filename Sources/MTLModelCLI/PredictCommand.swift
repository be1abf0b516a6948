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

/// Standard output, or a file written atomically.
final class OutputSink {
    private let handle: FileHandle
    private let temporary: String?
    private let target: String?

    init(path: String?) throws {
        guard let path else {
            handle = FileHandle.standardOutput
            temporary = nil
            target = nil
            return
        }
        let temporary = path + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil) , let handle = FileHandle(forWritingAtPath: temporary) else {
            throw MTLModelError(.io, "cannot create the output file", file: path)
        }
        self.handle = handle
        self.temporary = temporary
        target = path
    }

    deinit {
        if let temporary { unlink(temporary) }
    }

    func write(_ text: String) throws {
        do {
            try handle.write(contentsOf: Data(text.utf8))
        } catch {
            throw MTLModelError(.io, "write failed: \(error.localizedDescription)", file: target ?? "<stdout>")
        }
    }

    func finish() throws {
        guard let temporary, let target else { return }
        try handle.synchronize()
        try handle.close()
        guard rename(temporary, target) == 0 else {
            throw MTLModelError(.io, "cannot move the output into place: \(String(cString: strerror(errno)))", file: target)
        }
    }
}

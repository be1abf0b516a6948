import ArgumentParser
import Foundation
import MTLModel

/// Options shared by the commands that read a dataset.
struct DatasetOptions: ParsableArguments {
    @Argument(help: "The .mtlm model.")
    var model: String

    @Argument(help: "The dataset in MODEL.md's text format; - reads standard input.")
    var data: String

    @Flag(help: "Skip malformed lines (and report how many) instead of stopping at the first.")
    var skipInvalid = false

    @Option(help: "Threads to compute with.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(help: "Samples read and computed at a time.")
    var batchSize: Int = 4096

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
    }

    /// Runs the model over the dataset batch by batch, in constant memory.
    ///
    /// - Parameter opened: called once the model and the data are open, before the first batch
    ///   (where an output is created: it is then checked against both inputs).
    func forEachBatch(opened: (Predictor) throws -> Void = { _ in },
                      _ body: (SampleBatch, Predictions, Predictor) throws -> Void) throws -> DatasetReader {
        let file = try limits.model(model, access: Predictor.modelAccess(forDatasetAt: data))
        let predictor = try Predictor(model: file, threadCount: threads)
        let reader = try DatasetReader(path: data, architecture: file.architecture, skipInvalid: skipInvalid)
        try opened(predictor)
        let predictions = PredictionStream(reader, predictor: predictor, batchSize: batchSize)
        defer { predictions.cancel() }
        let size = data == "-" ? 0 : (try? FileManager.default.attributesOfItem(atPath: data)[.size] as? UInt64) ?? 0
        try progress.run(total: size) {
            while let (batch, batchPredictions) = try predictions.next() {
                try body(batch, batchPredictions, predictor)
            }
        }
        if reader.skippedLineCount > 0 {
            Terminal.error("skipped \(reader.skippedLineCount) invalid line\(reader.skippedLineCount == 1 ? "" : "s") (first: \(reader.firstSkippedError!))")
        }
        return reader
    }
}

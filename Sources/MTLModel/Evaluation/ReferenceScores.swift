import Foundation

/// The reference model's side of several comparisons on the same data (a gate's comparison of
/// its output and of each step's model with the input): its predictions, written batch by
/// batch to a temporary file by the first comparison and read back by the next ones instead of
/// computed again, and its evaluation, the same every time.
///
/// A batch read back must be the size the first comparison read: the data changing between
/// comparisons is an error, not a comparison of different samples.
final class ReferenceScores {
    let model: Model
    private let taskCount: Int
    /// Whether the predictions are written at all (a lone comparison has no next one).
    private let recording: Bool
    private var tape: TemporaryFile?
    /// The bytes the first complete comparison wrote; nil until one has ended.
    private var recordedByteCount: Int?
    private var writeOffset = 0
    /// The reference model's evaluation, once a comparison has ended.
    private(set) var evaluation: Evaluation?
    /// Per task, the reference model's DeLong components and its probabilities' ranks in
    /// sample order (on disk), once a comparison has ended.
    private(set) var components: [ExternalSorter<RankedValues.Value>?] = []
    private(set) var ranks: [ExternalSorter<RankedValues.Value>?] = []

    init(_ model: Model, recording: Bool = true) {
        (self.model, self.recording) = (model, recording)
        taskCount = model.architecture.tasks.count
    }

    /// Whether a comparison has recorded every batch (the next ones read them back).
    var isRecorded: Bool { recording && recordedByteCount != nil && evaluation != nil }

    /// Starts writing a comparison's predictions from the beginning.
    func startRecording() {
        writeOffset = 0
        (recordedByteCount, evaluation, components, ranks) = (nil, nil, [], [])
    }

    func record(_ predictions: Predictions) throws {
        guard recording else { return }
        if tape == nil { tape = try TemporaryFile("reference", for: "the reference model's predictions") }
        var header = UInt64(predictions.count)
        try withUnsafeBytes(of: &header) { bytes in try tape!.write(bytes, at: writeOffset) }
        writeOffset += 8
        try write(predictions.logits)
        try write(predictions.probabilities)
        try write(predictions.fused)
    }

    /// The comparison that recorded has ended with `evaluation` of the reference model, and
    /// per task its components and ranks (written to disk: kept, they hold no memory).
    func finishRecording(_ evaluation: Evaluation, components: [ExternalSorter<RankedValues.Value>?],
                         ranks: [ExternalSorter<RankedValues.Value>?]) throws {
        guard recording else { return }
        for sorter in components + ranks { try sorter?.moveToDisk() }
        (self.components, self.ranks) = (components, ranks)
        (recordedByteCount, self.evaluation) = (writeOffset, evaluation)
    }

    /// The predictions recorded for `batch`, read at `offset` (advanced past them).
    func replay(_ batch: SampleBatch, at offset: inout Int, data: String) throws -> Predictions {
        var header: UInt64 = 0
        guard let tape, let recorded = recordedByteCount, offset + 8 <= recorded else { throw changed(data, offset: offset) }
        try withUnsafeMutableBytes(of: &header) { bytes in try tape.read(into: bytes, at: offset) }
        guard header == UInt64(batch.count) else { throw changed(data, offset: offset) }
        offset += 8
        var predictions = Predictions(taskCount: taskCount, count: batch.count)
        try read(&predictions.logits, at: &offset)
        try read(&predictions.probabilities, at: &offset)
        try read(&predictions.fused, at: &offset)
        return predictions
    }

    /// Checks that a comparison reading back has read every batch recorded.
    func finishReplay(at offset: Int, data: String) throws {
        guard offset == recordedByteCount else { throw changed(data, offset: offset) }
    }

    private func write<T: BitwiseCopyable>(_ values: [T]) throws {
        try values.withUnsafeBytes { bytes in try tape!.write(bytes, at: writeOffset) }
        writeOffset += values.count * MemoryLayout<T>.stride
    }

    private func read<T: BitwiseCopyable>(_ values: inout [T], at offset: inout Int) throws {
        let start = offset
        try values.withUnsafeMutableBytes { bytes in try tape!.read(into: bytes, at: start) }
        offset += values.count * MemoryLayout<T>.stride
    }

    private func changed(_ data: String, offset: Int) -> MTLModelError {
        MTLModelError(.invalidArgument, "the data changed while it was being scored: its batches are not the ones the first comparison read (at byte \(offset) of the reference model's predictions)", file: data)
    }
}

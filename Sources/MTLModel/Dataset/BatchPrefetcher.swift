import Foundation

/// Parses the next batches on a background thread while the caller computes on the current
/// one, so that parsing (single-threaded) overlaps the forward pass (multi-threaded).
/// At most `depth` parsed batches wait, so memory stays constant.
///
/// `@unchecked Sendable`: its mutable state (`ready`, `finished`, `failure`, `cancelled`) is
/// only touched with `condition` locked.
public final class BatchPrefetcher: @unchecked Sendable {
    private let condition = NSCondition()
    private var ready: [SampleBatch] = []
    private var finished = false
    private var failure: MTLModelError?
    private var cancelled = false
    private let depth: Int

    /// Starts reading `reader` in batches of `batchSize`; `prepare` runs on each batch on the
    /// parsing thread once it is handed over (`Predictor.prepare`: the table chunks the batch
    /// touches are checked there while the forward pass runs, which then finds them checked).
    public init(_ reader: DatasetReader, taskCount: Int, batchSize: Int, depth: Int = 2,
                prepare: (@Sendable (SampleBatch) -> Void)? = nil) {
        self.depth = max(1, depth)
        let handoff = ReaderHandoff(reader)
        let thread = Thread { [self] in
            let reader = handoff.reader
            var batch = SampleBatch(taskCount: taskCount, capacity: batchSize)
            do throws(MTLModelError) {
                while try reader.nextBatch(into: &batch, maxCount: batchSize) {
                    condition.lock()
                    while ready.count >= self.depth && !cancelled { condition.wait() }
                    if cancelled {
                        condition.unlock()
                        break
                    }
                    ready.append(batch)
                    condition.broadcast()
                    condition.unlock()
                    prepare?(batch)
                }
            } catch {
                condition.lock()
                failure = error
                condition.unlock()
            }
            condition.lock()
            finished = true
            condition.broadcast()
            condition.unlock()
        }
        thread.start()
    }

    deinit { cancel() }

    /// The next batch in order, nil at the end of the input.
    ///
    /// - Throws: the reader's error, after the batches before it.
    public func next() throws(MTLModelError) -> SampleBatch? {
        condition.lock()
        defer { condition.unlock() }
        while ready.isEmpty && !finished { condition.wait() }
        if !ready.isEmpty {
            let batch = ready.removeFirst()
            condition.broadcast()
            return batch
        }
        if let failure { throw failure }
        return nil
    }

    /// Stops the background thread after its current batch.
    public func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}

/// Moves the reader to the parsing thread. `@unchecked Sendable` and safe: from then on only
/// that thread uses the reader until it has finished, which it records under the prefetcher's
/// lock; the caller reads the reader's counters only after `next()` has returned nil, under
/// the same lock, so every access is ordered.
private final class ReaderHandoff: @unchecked Sendable {
    let reader: DatasetReader
    init(_ reader: DatasetReader) { self.reader = reader }
}

import Foundation

/// Parses the next batches on a background thread while the caller computes on the current
/// one, so that parsing (single-threaded) overlaps the forward pass (multi-threaded).
/// At most `depth` parsed batches wait, so memory stays constant.
public final class BatchPrefetcher: @unchecked Sendable {
    private let condition = NSCondition()
    private var ready: [SampleBatch] = []
    private var finished = false
    private var failure: MTLModelError?
    private var cancelled = false
    private let depth: Int

    /// Starts reading `reader` in batches of `batchSize`.
    public init(_ reader: DatasetReader, taskCount: Int, batchSize: Int, depth: Int = 2) {
        self.depth = max(1, depth)
        let thread = Thread { [self] in
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

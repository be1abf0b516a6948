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

    /// Starts reading `reader` in batches of `batchSize`. On the parsing thread, `prepare`
    /// completes each batch before it is queued (its error is the reader's), `handedOver`
    /// sees each batch once it is queued, and `idleWork` runs whenever the queue is full or the
    /// input has ended, a piece at a time (it returns false when it has nothing to do): a
    /// `PredictionStream` checks there the table chunks of the batches it has been given, so
    /// that the thread parses ahead first and checks with the time it has left.
    public convenience init(_ reader: DatasetReader, taskCount: Int, batchSize: Int, depth: Int = 2) {
        self.init(reader, taskCount: taskCount, batchSize: batchSize, depth: depth, prepare: nil, handedOver: nil, idleWork: nil)
    }

    init(_ reader: DatasetReader, taskCount: Int, batchSize: Int, depth: Int = 2,
         prepare: (@Sendable (inout SampleBatch) throws(MTLModelError) -> Void)?,
         handedOver: (@Sendable (SampleBatch) -> Void)?, idleWork: (@Sendable () -> Bool)?) {
        self.depth = max(1, depth)
        let handoff = ReaderHandoff(reader)
        let thread = Thread { [self] in
            let reader = handoff.reader
            var batch = SampleBatch(taskCount: taskCount, capacity: batchSize)
            do throws(MTLModelError) {
                while try reader.nextBatch(into: &batch, maxCount: batchSize) {
                    try prepare?(&batch)
                    guard waitForRoom(idleWork) else { break }
                    ready.append(batch)
                    condition.broadcast()
                    condition.unlock()
                    handedOver?(batch)
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
            while let idleWork, !isCancelled, idleWork() {}
        }
        thread.start()
    }

    /// Waits until the queue has room, doing `idleWork` meanwhile; returns with `condition`
    /// locked, or false (unlocked) once cancelled.
    private func waitForRoom(_ idleWork: (() -> Bool)?) -> Bool {
        condition.lock()
        while ready.count >= depth && !cancelled {
            condition.unlock()
            let worked = idleWork?() ?? false
            condition.lock()
            // Work appears only on this thread (`handedOver`): none now means none until room.
            if !worked && ready.count >= depth && !cancelled { condition.wait() }
        }
        if cancelled { condition.unlock() }
        return !cancelled
    }

    private var isCancelled: Bool { condition.withLock { cancelled } }

    deinit { cancel() }

    /// The next batch in order, nil at the end of the input.
    ///
    /// - Throws: the reader's error, after the batches before it.
    public func next() throws(MTLModelError) -> SampleBatch? {
        if case .batch(let batch) = try next(waiting: true) { return batch }
        return nil
    }

    enum Next { case batch(SampleBatch), notYet, end }

    /// The next batch; when `waiting` is false, `.notYet` if none is parsed yet — or if the
    /// reader failed: only a waiting call throws, so that a caller holding batches back (a
    /// `PredictionStream`) hands them out before the error, as it should.
    func next(waiting: Bool) throws(MTLModelError) -> Next {
        condition.lock()
        defer { condition.unlock() }
        while waiting && ready.isEmpty && !finished { condition.wait() }
        if !ready.isEmpty {
            let batch = ready.removeFirst()
            condition.broadcast()
            return .batch(batch)
        }
        if !finished || (failure != nil && !waiting) { return .notYet }
        if let failure { throw failure }
        return .end
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

import Foundation
import Synchronization

/// A dataset's predictions, batch by batch in order, in constant memory: a background thread
/// parses the batches and checks the table chunks they touch, while the caller's thread(s)
/// compute them.
///
/// Why not check each chunk as a lookup touches it: the first batch of random ids touches
/// nearly every chunk of a large table (1 GiB to checksum for MODEL.md's example with a
/// 16M-row table), and the forward pass waited for half of that work. Here the forward pass
/// runs ahead of the checks instead — a batch's predictions are kept back until every chunk it
/// read has matched its checksum (`Predictor.confirm`), so no prediction made from a bad chunk
/// is ever returned: the batch fails with the chunk's error, as it would have. Meanwhile the
/// parsing thread, once it is ahead, checks the chunks of the batches handed over, and the
/// caller checks whatever is left only when it has nothing else to do.
///
/// Not thread-safe: one thread calls `next()`.
public final class PredictionStream {
    private let predictor: Predictor
    private let batches: BatchPrefetcher
    private let checks: PendingChecks
    /// Whether some table is checked as lookups touch it (else a batch is handed out as soon
    /// as it is computed).
    private let checking: Bool
    /// Batches computed and not returned yet, oldest first, with their sequence numbers.
    private var computed: [(number: Int, batch: SampleBatch, predictions: Predictions)] = []
    private var computedEntries = 0
    private var handedOut = 0

    /// Entries of the batches computed ahead of the checks at most (~20 bytes each in memory):
    /// MODEL.md's example table takes 4096-sample batches 25 deep, p40's 2 deep.
    static let aheadEntryLimit = 512 << 10

    public init(_ reader: DatasetReader, predictor: Predictor, batchSize: Int) {
        self.predictor = predictor
        let checks = PendingChecks(predictor)
        self.checks = checks
        checking = predictor.checksTablesOnAccess
        batches = BatchPrefetcher(reader, taskCount: predictor.architecture.tasks.count, batchSize: batchSize,
                                  prepare: predictor.indexesKeysPerBatch ? predictor.resolveKeys : nil,
                                  handedOver: checking ? checks.add : nil, idleWork: checking ? checks.work : nil)
    }

    deinit { batches.cancel() }

    /// The next batch and its predictions, nil at the end of the dataset.
    ///
    /// - Throws: the dataset's error, a table chunk's that the batch read, or a prediction that
    ///   is not finite (`Predictor.predict`), after the batches before it.
    public func next() throws(MTLModelError) -> (batch: SampleBatch, predictions: Predictions)? {
        while true {
            // The parsing thread has checked the oldest batch's chunks: confirming it is quick.
            if let oldest = computed.first, !checking || oldest.number < checks.checkedCount { return try handOut() }
            if computed.isEmpty || computedEntries < Self.aheadEntryLimit {
                switch try batches.next(waiting: computed.isEmpty) {
                case .batch(let batch):
                    let predictions = try predictor.compute(batch, checkingChunks: false)
                    computed.append((handedOut + computed.count, batch, predictions))
                    computedEntries += batch.entryID.count
                    continue
                case .end where computed.isEmpty: return nil
                case .notYet, .end: break
                }
            }
            return try handOut()  // nothing else to do: check what is left here
        }
    }

    /// Stops the background thread.
    public func cancel() { batches.cancel() }

    private func handOut() throws(MTLModelError) -> (batch: SampleBatch, predictions: Predictions) {
        let (_, batch, predictions) = computed.removeFirst()
        computedEntries -= batch.entryID.count
        // A batch the parsing thread found clean needs no second look at its chunks.
        try predictor.confirm(predictions, of: batch, chunksChecked: !checking || checks.isClean(handedOut))
        handedOut += 1
        checks.handedOut(handedOut)  // after the look: from now on it may drop the batch unchecked
        return (batch, predictions)
    }
}

/// The batches whose chunks the parsing thread is to check, in order; only that thread uses
/// `pending`, the caller reads `checkedCount` and says how many batches it has handed out —
/// those are dropped unchecked (the caller has checked them itself), so that a parsing thread
/// that never runs out of parsing to do does not keep every batch of the dataset.
///
/// `@unchecked Sendable`: `pending`, `cursor` and `failing` belong to the parsing thread.
private final class PendingChecks: @unchecked Sendable {
    private let predictor: Predictor
    private var pending: [SampleBatch] = []
    /// Entries of `pending[0]` left to check (they are checked last to first).
    private var cursor = 0
    /// Batches checked (or dropped), i.e. the number of `pending[0]`.
    private let checked = Atomic<Int>(0)
    private let handedOutCount = Atomic<Int>(0)
    /// The first batch in which a chunk failed (`Int.max`: none).
    private let firstFailed = Atomic<Int>(.max)
    /// Whether a chunk of `pending[0]` failed so far.
    private var failing = false

    init(_ predictor: Predictor) { self.predictor = predictor }

    /// Batches whose every chunk has been checked (or failed: the caller finds it again).
    var checkedCount: Int { checked.load(ordering: .acquiring) }

    /// Whether every chunk batch `number` touches has been checked and matched.
    func isClean(_ number: Int) -> Bool {
        number < checkedCount && number < firstFailed.load(ordering: .relaxed)
    }

    func handedOut(_ count: Int) { handedOutCount.store(count, ordering: .relaxed) }

    func add(_ batch: SampleBatch) {
        dropHandedOut()
        if pending.isEmpty { cursor = batch.entryID.count }
        pending.append(batch)
    }

    private func dropHandedOut() {
        while !pending.isEmpty && checked.load(ordering: .relaxed) < handedOutCount.load(ordering: .relaxed) {
            pending.removeFirst()
            failing = false
            cursor = pending.first?.entryID.count ?? 0
            checked.add(1, ordering: .releasing)
        }
    }

    /// Checks the chunks of the next `piece` entries; false when there is nothing to check.
    /// A piece is short so that the thread soon gets back to parsing when the caller needs a
    /// batch (at most 64 MiB of chunks, 4 ms, at the start; microseconds once checked).
    func work() -> Bool {
        dropHandedOut()
        guard let batch = pending.first else { return false }
        let start = max(0, cursor - Self.piece)
        if predictor.firstFailure(batch, entries: (start..<cursor).reversed()) != nil { failing = true }
        cursor = start
        if cursor == 0 {
            // Stored before `checked` moves past the batch (release), read after it (acquire).
            if failing && firstFailed.load(ordering: .relaxed) == .max { firstFailed.store(checked.load(ordering: .relaxed), ordering: .relaxed) }
            failing = false
            pending.removeFirst()
            cursor = pending.first?.entryID.count ?? 0
            checked.add(1, ordering: .releasing)
        }
        return true
    }

    private static let piece = 64
}

import CKernels
import Foundation
import Synchronization

/// The outputs of a batch: per sample and task a logit and a probability, per sample the
/// fused ranking score.
public struct Predictions: Sendable {
    public let taskCount: Int
    public private(set) var count = 0
    /// `count × taskCount`, sample-major.
    public internal(set) var logits: [Float] = []
    public internal(set) var probabilities: [Float] = []
    public internal(set) var fused: [Double] = []

    init(taskCount: Int, count: Int) {
        self.taskCount = taskCount
        self.count = count
        logits = Array(repeating: 0, count: count * taskCount)
        probabilities = Array(repeating: 0, count: count * taskCount)
        fused = Array(repeating: 0, count: count)
    }
}

/// Computes MODEL.md's forward pass for a model: the weights are used in place (mapped)
/// when they are stored as uncompressed float32, keyed tables get an id → row index (built
/// once, or batch by batch for a large table or a small request: `KeyedIndex`), dense layers
/// are evaluated in batches, and a batch is split across threads.
///
/// `@unchecked Sendable`: the weights are immutable, and the spare workspaces are taken and
/// given back only under `lock`.
public final class Predictor: @unchecked Sendable {
    public let architecture: Architecture
    public let threadCount: Int
    let weights: ModelWeights
    /// Scratch buffers reused across calls (taken and given back, so concurrent calls are safe).
    private var spareWorkspaces: [Workspace] = []
    private let lock = NSLock()

    /// - Parameters:
    ///   - model: a checked model (kept open while the predictor lives).
    ///   - threadCount: threads a batch is split across (at least 1).
    /// - Throws: when a dense or interaction tensor fails its checksum (tables are checked a
    ///   chunk at a time as lookups touch them), a dense weight is NaN or Inf, or a keyed table
    ///   repeats a key.
    public init(model: Model, threadCount: Int = 1) throws {
        architecture = model.architecture
        self.threadCount = max(1, threadCount)
        weights = try ModelWeights(model)
    }

    /// Predicts every sample of `batch`.
    ///
    /// - Throws: when a table chunk a lookup touches fails its checksum (checked the first time
    ///   any lookup touches it), a keyed table looked up per batch stores an id of the batch
    ///   twice, or when a sample's prediction is not finite (never a NaN score with success):
    ///   naming the table row that holds a NaN or Inf, or, when every weight it used is finite,
    ///   saying that they overflow float32.
    public func predict(_ batch: SampleBatch) throws(MTLModelError) -> Predictions {
        var batch = batch
        try resolveKeys(&batch)
        let output = try compute(batch, checkingChunks: true)
        try checkFinite(output, of: batch)
        return output
    }

    /// Whether some keyed table is indexed per batch (`KeyedIndex`): each batch's ids in it
    /// are then found first (`resolveKeys`).
    var indexesKeysPerBatch: Bool { weights.fields.contains { $0.keys.map { !$0.isWhole } ?? false } }

    /// Finds the rows of `batch`'s ids in the keyed tables indexed per batch: one pass over
    /// each such table's keys (a `PredictionStream` does it on its parsing thread).
    ///
    /// - Throws: when a keys chunk fails its checksum, or a key the batch holds is stored twice.
    func resolveKeys(_ batch: inout SampleBatch) throws(MTLModelError) {
        guard indexesKeysPerBatch, batch.keyedRows?.owner !== weights else { return }
        do {
            batch.keyedRows = try BatchKeys(batch, weights: weights)
        } catch let error as MTLModelError {
            throw error
        } catch {
            throw MTLModelError(.io, "\(error)", file: weights.model.path)
        }
    }

    /// The forward pass over `batch` (its keys resolved), its blocks split across the threads.
    /// Not checking chunks: the predictions are a guess until `confirm` has passed
    /// (`PredictionStream`).
    func compute(_ batch: SampleBatch, checkingChunks: Bool) throws(MTLModelError) -> Predictions {
        precondition(!indexesKeysPerBatch || batch.keyedRows?.owner === weights, "a batch's keyed ids are resolved before it is computed")
        var output = Predictions(taskCount: architecture.tasks.count, count: batch.count)
        // A table chunk that fails its checksum when a lookup first touches it (one thread's).
        nonisolated(unsafe) var failure: MTLModelError?
        // Threads take blocks as they go rather than a fixed share each: a thread that shares
        // its core (with the reader thread, or anything else) would otherwise finish last
        // while the others wait (2 threads: 1.1× one thread's speed with fixed shares).
        let blockCount = (batch.count + ForwardPass.blockRows - 1) / ForwardPass.blockRows
        let nextBlock = Atomic<Int>(0)
        let failed = Atomic<Bool>(false)
        output.logits.withUnsafeMutableBufferPointer { logits in
            output.probabilities.withUnsafeMutableBufferPointer { probabilities in
                output.fused.withUnsafeMutableBufferPointer { fused in
                    let sink = OutputPointers(logits: logits.baseAddress!, probabilities: probabilities.baseAddress!, fused: fused.baseAddress!)
                    DispatchQueue.concurrentPerform(iterations: min(threadCount, blockCount)) { _ in
                        let workspace = self.takeWorkspace()
                        defer { self.giveBack(workspace) }
                        workspace.checksChunks = checkingChunks
                        while !failed.load(ordering: .relaxed) {
                            let block = nextBlock.wrappingAdd(1, ordering: .relaxed).oldValue
                            guard block < blockCount else { break }
                            let start = block * ForwardPass.blockRows
                            ForwardPass.run(weights, batch, start..<min(batch.count, start + ForwardPass.blockRows), workspace, sink)
                            if workspace.failure != nil { failed.store(true, ordering: .relaxed) }
                        }
                        if let problem = workspace.failure {
                            workspace.failure = nil
                            self.lock.withLock { failure = failure ?? problem }
                        }
                    }
                }
            }
        }
        if let failure = lock.withLock({ failure }) { throw failure }
        return output
    }

    /// Checks that `output`, computed by `compute(batch, checkingChunks: false)`, may be used:
    /// the table chunks `batch` read match their checksums (those not checked yet are checked
    /// here, unless `chunksChecked` says all have been), then that every prediction is finite.
    func confirm(_ output: Predictions, of batch: SampleBatch, chunksChecked: Bool) throws(MTLModelError) {
        if !chunksChecked, let failure = firstFailure(batch, entries: 0..<batch.entryID.count) { throw failure }
        try checkFinite(output, of: batch)
    }

    private func checkFinite(_ output: Predictions, of batch: SampleBatch) throws(MTLModelError) {
        if let bad = output.logits.firstIndex(where: { !$0.isFinite }) ?? output.fused.firstIndex(where: { !$0.isFinite }).map({ $0 * output.taskCount }) {
            throw weights.nonFiniteError(batch, sample: bad / output.taskCount)
        }
    }

    /// Whether some table is checked chunk by chunk as lookups touch it.
    var checksTablesOnAccess: Bool {
        weights.fields.contains { $0.embedding.checks != nil || $0.linear?.checks != nil }
    }

    /// Checks the table chunks that the entries `entries` of `batch` touch and that are not
    /// checked yet, in that order; the first chunk that fails, or nil. A chunk that fails is
    /// not recorded as checked: it fails again for whoever touches it next. (The check is
    /// spelled out as in `ForwardPass.lookUp`: a method of the field's weights made each call
    /// copy them, a retain and release per entry, 4% of `predict` p40.)
    func firstFailure<Entries: Sequence<Int>>(_ batch: SampleBatch, entries: Entries) -> MTLModelError? {
        weights.fields.withUnsafeBufferPointer { fields in
            for e in entries {
                let f = Int(batch.entryField[e])
                guard fields[f].embedding.checks != nil || fields[f].linear?.checks != nil else { continue }
                let row = fields[f].row(of: batch.entryID[e], batch.keyedRows)
                guard row >= 0 else { continue }
                if let problem = fields[f].embedding.checks?.check(row: row) ?? fields[f].linear?.checks?.check(row: row) { return problem }
            }
            return nil
        }
    }

    private func takeWorkspace() -> Workspace {
        lock.withLock { spareWorkspaces.popLast() } ?? Workspace(weights, rows: ForwardPass.blockRows)
    }

    private func giveBack(_ workspace: Workspace) {
        lock.withLock { spareWorkspaces.append(workspace) }
    }

    /// The dense-layer kernel this CPU uses ("avx512f", "avx2-fma" or "portable").
    public static var kernelName: String { String(cString: mtlm_dense_kernel_name()) }

    /// How to open the model that will score the dataset at `path`: `.sparse` when it is a
    /// file of at most `smallRequestByteCount` bytes (some hundreds of samples: their lookups
    /// touch a few rows of each large table), `.bulk` otherwise (standard input included).
    public static func modelAccess(forDatasetAt path: String) -> ModelFile.Access {
        var info = stat()
        guard path != "-", stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG,
              info.st_size <= smallRequestByteCount else { return .bulk }
        return .sparse
    }

    /// 64 KiB: at most a few thousand samples, whose random ids touch at most a few hundred
    /// MiB of a table; mapped sparsely that is at most ~25 ms more than in bulk, and a request
    /// of ten samples keeps ~30 MiB fewer bytes resident (docs/PERFORMANCE.md, #17).
    public static let smallRequestByteCount = 64 << 10
}

/// Where a forward pass writes its results (sample-major), shared across threads that
/// write disjoint samples.
/// `@unchecked Sendable`: each thread writes only its own samples' slots.
struct OutputPointers: @unchecked Sendable {
    let logits: UnsafeMutablePointer<Float>
    let probabilities: UnsafeMutablePointer<Float>
    let fused: UnsafeMutablePointer<Double>
}

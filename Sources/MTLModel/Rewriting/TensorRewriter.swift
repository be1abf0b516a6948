import CKernels
import Foundation
import Synchronization

/// Which rows of a table a rewrite keeps (pruning), decided row by row as the rewrite streams.
struct RowFilter: Sendable {
    /// Rows kept in all: the first dimension of the written tensor.
    var keptCount: Int
    var isKept: @Sendable (Int) -> Bool
}

/// Streams tensors of one model into a writer, window by window of rows: copied as stored,
/// re-encoded as another dtype (measuring the error), or with only some rows kept. Shared by
/// `quantize`, `dequantize` and `convert`, so every rewrite has the same bounded memory and the
/// same checks (NaN / Inf, float16 range).
struct TensorRewriter {
    /// Rows per window: bounds the memory of the float and encoded buffers.
    static let windowRowCount = 16_384

    let model: ModelFile
    let writer: ModelWriter
    /// Threads of the rewrite: the check of each tensor read, and windows encoded at once when
    /// the dtype changes (copies are bound by the disk).
    var threadCount = 1

    /// Writes `entry` as `target`, keeping the rows `filter` keeps (all without one).
    ///
    /// - Returns: the change, when the dtype changed (nil for a copy).
    @discardableResult
    func write(_ entry: TensorEntry, as target: DType, keeping filter: RowFilter? = nil) throws -> QuantizationReport.TensorChange? {
        // Nothing derived from an invalid tensor is written: its values and keys are checked
        // in one pass before the copy or the re-encoding reads it.
        try model.requireValid(entry, threadCount: threadCount)
        var shape = entry.shape
        if let filter { shape[0] = UInt64(filter.keptCount) }
        if target == entry.dtype {
            try copy(entry, shape: shape, filter: filter)
            return nil
        }
        return try convert(entry, to: target, shape: shape, filter: filter)
    }

    /// Writes the values `floats` (row-major, `entry`'s shape) as `target`.
    func write(_ entry: TensorEntry, values floats: [Float], as target: DType) throws {
        let columns = entry.columnCount
        let rowBytes = Int(target.rowByteCount(columns: UInt64(columns)))
        try writer.beginTensor(entry.name, dtype: target, shape: entry.shape, role: entry.role)
        var encoded = [UInt8](repeating: 0, count: rowBytes)
        for row in 0..<(columns == 0 ? 0 : floats.count / columns) {
            try floats.withUnsafeBufferPointer { x in
                try encoded.withUnsafeMutableBytes { out in
                    try RowEncoder(path: model.path).encode(x.baseAddress! + row * columns, columns: columns, as: target, into: out.baseAddress!, row: row, of: entry)
                }
            }
            try writer.write(encoded[...])
        }
        try writer.endTensor()
    }

    private func copy(_ entry: TensorEntry, shape: [UInt64], filter: RowFilter?) throws {
        try writer.beginTensor(entry.name, dtype: entry.dtype, shape: shape, role: entry.role)
        guard let filter else {
            // Chunks of the same size and place keep their checked CRCs (the writer checks that).
            try model.visitValidChunks(of: entry) { chunk, crc in try crc.map { try writer.write(chunk, checkedCRC: $0) } ?? writer.write(chunk) }
            return try writer.endTensor()
        }
        let rows = Int(entry.shape[0])
        let rowBytes = rows == 0 ? 0 : Int(entry.byteCount) / rows
        try model.withTensorBytes(entry.name) { stored in
            // Runs of kept rows are written as one piece.
            var runStart = -1, released = 0
            for row in 0...rows {
                if row < rows && filter.isKept(row) {
                    if runStart < 0 { runStart = row }
                    continue
                }
                if runStart >= 0 {
                    try writer.write(UnsafeRawBufferPointer(rebasing: stored[(runStart * rowBytes)..<(row * rowBytes)]))
                    runStart = -1
                }
                if row - released >= Self.windowRowCount || row == rows {
                    release(entry, rows: released..<row, rowBytes: rowBytes)
                    Progress.advance((row - released) * rowBytes)
                    released = row
                }
            }
        }
        try writer.endTensor()
    }

    private func convert(_ entry: TensorEntry, to target: DType, shape: [UInt64], filter: RowFilter?) throws -> QuantizationReport.TensorChange {
        let columns = entry.columnCount
        let rows = columns == 0 ? 0 : Int(entry.elementCount) / columns
        let sourceRowBytes = Int(entry.dtype.rowByteCount(columns: UInt64(columns)))
        let targetRowBytes = Int(target.rowByteCount(columns: UInt64(columns)))
        let storedShape = shape.isEmpty ? [1] : shape
        guard let byteCountAfter = target.storedByteCount(shape: storedShape) else {
            throw MTLModelError(.invalidArgument, "shape \(entry.shape) cannot be stored as \(target)", file: model.path, location: .init(tensor: entry.name))
        }
        try writer.beginTensor(entry.name, dtype: target, shape: shape, role: entry.role)
        let placed = filter == nil ? try writer.placedTensor() : nil
        var errors = ErrorSums()
        try model.withTensorBytes(entry.name) { stored in
            let windows = Windows(entry: entry, target: target, filter: filter, rows: rows, sourceRowBytes: sourceRowBytes,
                                  targetRowBytes: targetRowBytes, stored: stored.baseAddress!, encoder: RowEncoder(path: model.path))
            errors = try placed.map { try encodePlaced(windows, into: $0) } ?? encodeInOrder(windows)
        }
        try writer.endTensor()
        let written = filter?.keptCount ?? rows
        return .init(name: entry.name, dtypeBefore: entry.dtype, dtypeAfter: target, byteCountBefore: entry.byteCount,
                     byteCountAfter: byteCountAfter, rowCount: written,
                     meanRelativeError: written == 0 ? 0 : errors.sum / Double(written), maxRelativeError: errors.max)
    }

    /// Windows are encoded `threadCount` at a time (a batch), each into its own buffer, and
    /// written in order by this thread (rows pruned, or an output written in place). With
    /// several threads the workers encode the next batch while this thread writes the last
    /// (two sets of buffers): the write — page-cache copies and checksums — is a third of the
    /// work, and left the workers idle.
    private func encodeInOrder(_ windows: Windows) throws -> ErrorSums {
        let threads = threadCount, batchCount = (windows.count + threads - 1) / threads
        let overlap = threads > 1 && batchCount > 1
        let sets = (0..<(overlap ? 2 : 1)).map { _ in (0..<threads).map { _ in windows.buffer() } }
        var errors = ErrorSums()
        let encode: @Sendable (Int) -> Void = { batch in
            let set = sets[batch % sets.count], firstWindow = batch * threads
            DispatchQueue.concurrentPerform(iterations: min(threads, windows.count - firstWindow)) { i in
                windows.encode(firstWindow + i, into: set[i])
            }
        }
        try Self.pipeline(count: batchCount, ahead: overlap, produce: encode) { batch in
            let set = sets[batch % sets.count], first = batch * threads
            for buffer in set[..<min(threads, windows.count - first)] {
                if let failure = buffer.failure { throw failure }
                try write(buffer.encoded, byteCount: buffer.count * windows.targetRowBytes)
                errors.add(buffer.errors)
            }
            settle(windows, first..<min(first + threads, windows.count))
        }
        return errors
    }

    /// With every row kept, a window's place in the output is known (its first row × the row's
    /// bytes): each worker claims the next window, encodes it and writes it there
    /// (`PlacedTensor`), with no batch to wait for and no writing thread to wait for (the
    /// page-cache copy is the largest part of the work). Windows are settled in order by whichever
    /// worker completes a run of them. The failure thrown is the first in row order: a claimed
    /// window is always encoded, and none is claimed after a failure.
    private func encodePlaced(_ windows: Windows, into placed: PlacedTensor) throws -> ErrorSums {
        let ledger = WindowLedger(count: windows.count)
        let settling = Settling(rewriter: self, windows: windows)
        let buffers = (0..<min(threadCount, windows.count)).map { _ in windows.buffer() }
        DispatchQueue.concurrentPerform(iterations: buffers.count) { worker in
            let buffer = buffers[worker]
            while let window = ledger.claim() {
                windows.encode(window, into: buffer)
                buffer.write(to: placed, at: UInt64(windows.rows(of: window).lowerBound * windows.targetRowBytes), rowBytes: windows.targetRowBytes)
                ledger.complete(window, errors: buffer.errors, failure: buffer.failure) { settling.settle($0) }
            }
        }
        return try ledger.errors()
    }

    /// What follows the writing of windows `range`, in window order: their input pages
    /// released, their output's writeback started (`placedBytesWritten`), progress.
    private func settle(_ windows: Windows, _ range: Range<Int>) {
        let rows = windows.rows(of: range.lowerBound).lowerBound..<windows.rows(of: range.upperBound - 1).upperBound
        writer.placedBytesWritten(below: UInt64(rows.upperBound * windows.targetRowBytes))
        release(windows.entry, rows: rows, rowBytes: windows.sourceRowBytes)
        Progress.advance(rows.count * windows.sourceRowBytes)
    }

    /// `settle` for the workers of `encodePlaced`. Safe to share: the ledger calls it under its
    /// lock, one run of windows at a time, in window order.
    private struct Settling: @unchecked Sendable {
        let rewriter: TensorRewriter
        let windows: Windows
        func settle(_ range: Range<Int>) { rewriter.settle(windows, range) }
    }

    /// The windows of a placed conversion: the next to claim, which are done and how far they
    /// are settled, each one's errors, and whether one failed.
    private final class WindowLedger: Sendable {
        private struct State {
            var outcomes: [(errors: ErrorSums, failure: (any Error)?)?]
            var next = 0
            var settled = 0
            var failed = false
        }
        private let state: Mutex<State>

        init(count: Int) { state = Mutex(State(outcomes: Array(repeating: nil, count: count))) }

        /// The next window to encode; nil when all are claimed or one has failed.
        func claim() -> Int? {
            state.withLock { state in
                guard !state.failed, state.next < state.outcomes.count else { return nil }
                state.next += 1
                return state.next - 1
            }
        }

        /// Records a window's outcome; `settle` runs on each run of windows it completes.
        func complete(_ window: Int, errors: ErrorSums, failure: (any Error)?, settle: (Range<Int>) -> Void) {
            state.withLock { state in
                state.outcomes[window] = (errors, failure)
                state.failed = state.failed || failure != nil
                let first = state.settled
                while state.settled < state.outcomes.count, state.outcomes[state.settled] != nil { state.settled += 1 }
                if state.settled > first { settle(first..<state.settled) }
            }
        }

        /// The errors of all windows in order, or the first failure.
        func errors() throws -> ErrorSums {
            var errors = ErrorSums()
            for outcome in state.withLock({ $0.outcomes }) {
                guard let outcome else { break }  // not claimed: a failure came before
                if let failure = outcome.failure { throw failure }
                errors.add(outcome.errors)
            }
            return errors
        }
    }

    /// `produce(i)` then `consume(i)` for each i in order; `ahead`, `produce(i + 1)` runs on
    /// another thread while this one runs `consume(i)`. No producer outlives the call (they
    /// read what the caller maps, and fill what `consume` reads).
    private static func pipeline(count: Int, ahead: Bool, produce: @escaping @Sendable (Int) -> Void,
                                 consume: (Int) throws -> Void) throws {
        let producing = DispatchGroup()
        defer { producing.wait() }
        for i in 0..<count {
            if !ahead {
                produce(i)
            } else {
                if i == 0 { produce(0) }
                producing.wait()
                if i + 1 < count { DispatchQueue.global().async(group: producing) { produce(i + 1) } }
            }
            try consume(i)
        }
    }

    /// The windows of rows of one tensor's conversion, as the workers see them. Safe to share:
    /// the mapping `stored` points into is read-only and outlives the `withTensorBytes` closure
    /// the workers run in.
    fileprivate struct Windows: @unchecked Sendable {
        let entry: TensorEntry
        let target: DType
        let filter: RowFilter?
        let rows: Int
        let sourceRowBytes: Int
        let targetRowBytes: Int
        let stored: UnsafeRawPointer
        let encoder: RowEncoder
        let size = TensorRewriter.windowRowCount

        var count: Int { (rows + size - 1) / size }

        func rows(of window: Int) -> Range<Int> { (window * size)..<min((window + 1) * size, rows) }

        func buffer() -> WindowBuffer { WindowBuffer(rows: size, columns: entry.columnCount, rowBytes: targetRowBytes) }

        func encode(_ window: Int, into buffer: WindowBuffer) {
            buffer.encode(rows: rows(of: window), from: stored, sourceRowBytes: sourceRowBytes, entry: entry, target: target,
                          filter: filter, rewriter: encoder)
        }
    }

    /// Per-row relative reconstruction errors ‖x − x̂‖ / ‖x‖: their sum and maximum.
    fileprivate struct ErrorSums {
        var sum = 0.0
        var max = 0.0

        mutating func add(_ other: ErrorSums) {
            sum += other.sum
            max = Swift.max(max, other.max)
        }
    }

    /// One window's rows, gathered (as float32), encoded, and measured by one thread.
    /// Safe to share: during a batch each buffer is used by exactly one worker of
    /// `concurrentPerform`, and read by the writing thread only after it returns (which orders
    /// the workers' writes before the reads).
    fileprivate final class WindowBuffer: @unchecked Sendable {
        /// The window's rows gathered as float32: allocated by the first window that gathers
        /// (the hot path reads mapped float32 rows, and would only fault in and zero it).
        var values: [Float] = []
        let valueCount: Int
        var encoded: [UInt8]
        var sourceRows: [Int]
        var errors = ErrorSums()
        var count = 0
        var failure: (any Error)?

        init(rows: Int, columns: Int, rowBytes: Int) {
            valueCount = rows * columns
            encoded = [UInt8](repeating: 0, count: rows * rowBytes)
            sourceRows = [Int](repeating: 0, count: rows)
        }

        func encode(rows range: Range<Int>, from stored: UnsafeRawPointer, sourceRowBytes: Int, entry: TensorEntry, target: DType,
                    filter: RowFilter?, rewriter: RowEncoder) {
            errors = ErrorSums()
            failure = nil
            do {
                let columns = entry.columnCount, targetRowBytes = Int(target.rowByteCount(columns: UInt64(columns)))
                if filter == nil && entry.dtype == .float32 {
                    // The hot path (gigabytes of embedding tables): the encoders read the mapped
                    // rows (float32 at offsets that are multiples of 64), no copy first.
                    count = range.count
                    let first = range.lowerBound, rows = stored + first * sourceRowBytes
                    if target == .int8Rowwise {
                        try rewriter.encodeInt8(rows, count: count, firstRow: { first + $0 }, into: &encoded, errors: &errors, entry: entry)
                        return
                    }
                    sourceRows.withUnsafeMutableBufferPointer { origins in for r in 0..<range.count { origins[r] = first + r } }
                    try rewriter.encodeRows(rows.assumingMemoryBound(to: Float.self), count: count, columns: columns, as: target, into: &encoded,
                                            rowBytes: targetRowBytes, sourceRows: sourceRows, errors: &errors, entry: entry)
                    return
                }
                // Gather the window's kept rows as float32, then encode them; for float32
                // (`dequantize`) they are decoded straight into the output rows.
                if target == .float32 {
                    let kept = encoded.withUnsafeMutableBytes { gather(range, stored, sourceRowBytes, entry, filter, into: $0.baseAddress!.assumingMemoryBound(to: Float.self)) }
                    count = kept
                    // A quantized row of extreme scale can decode beyond float32's range.
                    let origins = sourceRows
                    try encoded.withUnsafeBytes { out in
                        try rewriter.requireFinite(out.baseAddress!.assumingMemoryBound(to: Float.self), count: kept, columns: columns, sourceRows: origins, of: entry)
                    }
                    return
                }
                if values.isEmpty { values = [Float](repeating: 0, count: valueCount) }
                let kept = values.withUnsafeMutableBufferPointer { gather(range, stored, sourceRowBytes, entry, filter, into: $0.baseAddress!) }
                let origins = sourceRows
                count = kept
                try values.withUnsafeBufferPointer { floats in
                    if target == .int8Rowwise {
                        try rewriter.encodeInt8(UnsafeRawPointer(floats.baseAddress!), count: kept, firstRow: { origins[$0] },
                                                into: &encoded, errors: &errors, entry: entry)
                    } else {
                        try rewriter.encodeRows(floats.baseAddress!, count: kept, columns: columns, as: target, into: &encoded,
                                                rowBytes: targetRowBytes, sourceRows: origins, errors: &errors, entry: entry)
                    }
                }
            } catch {
                failure = error
            }
        }

        /// Decodes the kept rows of `range` to float32 at `floats`, one after another, their
        /// source rows into `sourceRows`; returns how many.
        /// (Into locals and buffers: a property written per row costs an exclusivity check each time.)
        private func gather(_ range: Range<Int>, _ stored: UnsafeRawPointer, _ sourceRowBytes: Int, _ entry: TensorEntry, _ filter: RowFilter?,
                            into floats: UnsafeMutablePointer<Float>) -> Int {
            let columns = entry.columnCount
            var kept = 0
            sourceRows.withUnsafeMutableBufferPointer { origins in
                for row in range where filter?.isKept(row) ?? true {
                    RowCodec.decodeRow(stored + row * sourceRowBytes, dtype: entry.dtype, columns: columns, into: floats + kept * columns)
                    origins[kept] = row
                    kept += 1
                }
            }
            return kept
        }

        /// Writes the encoded rows at `offset` of the placed tensor (unless encoding failed).
        func write(to placed: PlacedTensor, at offset: UInt64, rowBytes: Int) {
            guard failure == nil else { return }
            do throws(MTLModelError) {
                try withBytes(of: encoded) { raw throws(MTLModelError) in
                    try placed.write(UnsafeRawBufferPointer(rebasing: raw[..<(count * rowBytes)]), at: offset)
                }
            } catch {
                failure = error
            }
        }
    }

    private func write(_ encoded: [UInt8], byteCount: Int) throws {
        try withBytes(of: encoded) { raw throws(MTLModelError) in try writer.write(UnsafeRawBufferPointer(rebasing: raw[..<byteCount])) }
    }

    /// Releases the mapped pages of rows already read, so a pass over a table larger than
    /// memory keeps a bounded resident set.
    private func release(_ entry: TensorEntry, rows: Range<Int>, rowBytes: Int) {
        guard entry.compression == .none else { return }
        model.file.release(entry.offset + UInt64(rows.lowerBound * rowBytes), UInt64(rows.count * rowBytes))
    }
}

/// The row encoders of a rewrite: what the worker threads call. It holds only the model's
/// path (for messages), so it is `Sendable` and the workers share nothing else.
private struct RowEncoder: Sendable {
    let path: String

    /// Encodes `count` float32 rows at `rows` as INT8_ROWWISE with the C kernel.
    func encodeInt8(_ rows: UnsafeRawPointer, count: Int, firstRow sourceRow: (Int) -> Int,
                            into encoded: inout [UInt8], errors: inout TensorRewriter.ErrorSums, entry: TensorEntry) throws {
        let columns = entry.columnCount
        let bad = encoded.withUnsafeMutableBufferPointer { out in
            mtlm_quantize_int8_rowwise(rows.assumingMemoryBound(to: Float.self), count, columns, out.baseAddress!, &errors.sum, &errors.max)
        }
        if bad >= 0 {
            throw MTLModelError(.invalidArgument, "row \(sourceRow(bad)) holds NaN or Inf: cannot quantize it",
                                file: path, location: .init(tensor: entry.name))
        }
    }

    /// A window's rows as the encoders take them: `count` rows of `columns` float32 values at
    /// `x`, encoded row r at `out + r · rowBytes`, row r being row `sourceRows[r]` of `entry`.
    private struct Block {
        let x: UnsafePointer<Float>, count: Int, columns: Int
        let out: UnsafeMutableRawPointer, rowBytes: Int
        let sourceRows: [Int], entry: TensorEntry

        func values(_ r: Int) -> UnsafePointer<Float> { x + r * columns }
        func row(_ r: Int) -> UnsafeMutableRawPointer { out + r * rowBytes }
    }

    /// Encodes `count` rows of float32 values at `x` (mapped or gathered) as `target`.
    func encodeRows(_ x: UnsafePointer<Float>, count: Int, columns: Int, as target: DType, into encoded: inout [UInt8], rowBytes: Int,
                    sourceRows: [Int], errors: inout TensorRewriter.ErrorSums, entry: TensorEntry) throws {
        try encoded.withUnsafeMutableBytes { out in
            let block = Block(x: x, count: count, columns: columns, out: out.baseAddress!, rowBytes: rowBytes, sourceRows: sourceRows, entry: entry)
            switch target {
            case .int4Rowwise: try encodeInt4(block, errors: &errors)
            case .float16, .bfloat16: try encodeHalf(block, as: target, errors: &errors)
            default: try encodeEach(block, as: target, errors: &errors)
            }
        }
    }

    /// The clipping search of each row and its error, all rows in one call (the kernel searches
    /// 16 rows at once); values checked first, as `encode` does.
    private func encodeInt4(_ block: Block, errors: inout TensorRewriter.ErrorSums) throws {
        try requireFinite(block.x, count: block.count, columns: block.columns, sourceRows: block.sourceRows, of: block.entry)
        var sums = [errors.sum, errors.max]
        let bad = mtlm_encode_int4_rows(block.x, block.count, block.columns, block.out.assumingMemoryBound(to: UInt8.self), block.rowBytes,
                                        1, Int32(MTLM_INT4_BEST), &sums)
        if bad >= 0 { throw beyondRange(row: block.sourceRows[bad], .int4Rowwise, of: block.entry) }
        (errors.sum, errors.max) = (sums[0], sums[1])
    }

    /// Every row and its error in one call (8 rows at once); the row the kernel refuses is
    /// encoded again by `encode` for its message (NaN or Inf at a column, or beyond range).
    private func encodeHalf(_ block: Block, as target: DType, errors: inout TensorRewriter.ErrorSums) throws {
        var sums = [errors.sum, errors.max]
        let bad = mtlm_encode_half_rows(block.x, block.count, block.columns, block.out.assumingMemoryBound(to: UInt8.self), block.rowBytes,
                                        target == .bfloat16 ? 1 : 0, Int32(MTLM_HALF_BEST), &sums)
        if bad >= 0 {
            try encode(block.values(bad), columns: block.columns, as: target, into: block.row(bad), row: block.sourceRows[bad], of: block.entry)
            throw beyondRange(row: block.sourceRows[bad], target, of: block.entry)
        }
        (errors.sum, errors.max) = (sums[0], sums[1])
    }

    /// Row by row through `RowQuantizer` (the other types), each row's error from its decoded
    /// form.
    private func encodeEach(_ block: Block, as target: DType, errors: inout TensorRewriter.ErrorSums) throws {
        var decoded = [Float](repeating: 0, count: block.columns)
        try decoded.withUnsafeMutableBufferPointer { check in
            for r in 0..<block.count {
                try encode(block.values(r), columns: block.columns, as: target, into: block.row(r), row: block.sourceRows[r], of: block.entry)
                // float32 holds every finite value as it is: its error is 0, and decoding the row
                // again to find that cost a sixth of `dequantize`'s run.
                guard target != .float32 else { continue }
                let relative = RowQuantizer.relativeError(of: block.values(r), columns: block.columns, storedAs: UnsafeRawPointer(block.row(r)), target,
                                                          scratch: check.baseAddress!)
                errors.sum += relative
                errors.max = max(errors.max, relative)
            }
        }
    }

    /// Encodes one row, naming the tensor and row when its values cannot be stored as `target`.
    func encode(_ x: UnsafePointer<Float>, columns: Int, as target: DType, into row: UnsafeMutableRawPointer,
                        row index: Int, of entry: TensorEntry) throws {
        try requireFinite(x, columns: columns, row: index, of: entry)
        do {
            try RowQuantizer.encode(x, columns: columns, as: target, into: row)
        } catch {
            throw beyondRange(row: index, target, of: entry)
        }
    }

    /// Every value of `count` rows at `x` finite, else the error naming the first bad row:
    /// counted by the C scan (AVX2), the rows looked at one by one only when one is bad.
    func requireFinite(_ x: UnsafePointer<Float>, count: Int, columns: Int, sourceRows: [Int], of entry: TensorEntry) throws {
        var nan: UInt64 = 0, inf: UInt64 = 0, huge: UInt64 = 0
        UnsafeRawPointer(x).withMemoryRebound(to: UInt32.self, capacity: count * columns) { mtlm_count_nonfinite_f32($0, count * columns, &nan, &inf, &huge) }
        guard nan + inf > 0 else { return }
        for r in 0..<count { try requireFinite(x + r * columns, columns: columns, row: sourceRows[r], of: entry) }
    }

    private func requireFinite(_ x: UnsafePointer<Float>, columns: Int, row index: Int, of entry: TensorEntry) throws {
        for j in 0..<columns where !x[j].isFinite {
            throw MTLModelError(.invalidArgument, "row \(index) holds \(x[j]) at column \(j): cannot quantize NaN or Inf",
                                file: path, location: .init(tensor: entry.name))
        }
    }

    private func beyondRange(row index: Int, _ target: DType, of entry: TensorEntry) -> MTLModelError {
        let problem = target == .bfloat16
            ? "has values beyond bfloat16's range (±3.3895e38: they would round to Inf); keep it float32"
            : "has values beyond float16's range (±65504), which \(target) cannot hold; use int8 or bf16 for it"
        return MTLModelError(.invalidArgument, "row \(index) \(problem)", file: path, location: .init(tensor: entry.name))
    }
}

import CKernels

/// id → row of a keyed table, in one of two ways:
///
/// - **whole**: an index of every key, built once per load over the project's one id hash
///   table (`IDIndex`: 12 bytes a slot, twice as many slots as keys, so 24 bytes a key). It
///   finds every duplicate key at load.
/// - **per batch**: when that index would exceed `wholeIndexBudget`, or when the model is
///   mapped sparsely (a request of a few samples), each batch gets an index of only the ids it
///   holds, found by one sequential pass over the keys (`BatchKeys`). Memory then grows with
///   the batch, not with the table, and a request of ten samples reads the keys once instead
///   of inserting every one of them at random (8M keys: 0.47 s and 283 MB before).
///
/// - Complexity: whole, O(n) to build and O(1) expected per lookup; per batch, O(n) a batch.
struct KeyedIndex: Sendable {
    let tensor: ModelTensor
    /// The field's position in the architecture (`BatchKeys` holds its per-batch index there).
    let field: Int
    private let whole: IDIndex?

    /// At most this many bytes of index are built for a table whole: 128 MiB, 5.6M keys.
    static let wholeIndexBudget = 128 << 20

    /// Whether a table of `keyCount` keys is indexed whole.
    static func indexesWhole(keyCount: Int, sparse: Bool) -> Bool {
        !sparse && keyCount * 24 <= wholeIndexBudget
    }

    /// The index of the keys of `tensor` (whole when `whole`), part by part (one part unless
    /// the model is sharded), each key at its row of the whole table.
    ///
    /// - Throws: on a duplicate key (a keyed table maps each id to one row), naming it.
    init(_ tensor: ModelTensor, field: Int, whole: Bool) throws {
        self.tensor = tensor
        self.field = field
        // Rows are 32 bits (12 bytes a slot, not 16); a larger keyed table would need an index
        // of over 100 GB anyway.
        guard tensor.rowCount < Int(Int32.max) else {
            throw MTLModelError(.invalidArgument, "a keyed table of \(tensor.rowCount) rows is more than predict indexes (\(Int32.max - 1))", location: .init(tensor: tensor.name))
        }
        guard whole else {
            self.whole = nil
            return
        }
        let capacity = max(16, tensor.rowCount * 2)
        let index = IDIndex(capacity: capacity)
        index.clear(capacity: capacity)
        try Self.forEachChunk(of: tensor) { chunk, firstRow in
            let column = KeyColumn(chunk)
            for local in 0..<column.count {
                let key = column[local]
                index.insert(key, hash: SplitMix64.mix(key), row: Int32(firstRow + local))
                if index.duplicate != nil { throw Self.duplicateError(key, row: firstRow + local, tensor) }
            }
        }
        self.whole = index
    }

    /// The row of `key`, or -1 when the table does not hold it (out of vocabulary). `batch`
    /// holds the rows of the batch's ids when the table is indexed per batch.
    @inline(__always)
    func row(of key: UInt64, _ batch: BatchKeys?) -> Int {
        if let whole { return Int(whole.row(of: key, hash: SplitMix64.mix(key))) }
        return batch!.row(of: key, field: field)
    }

    var isWhole: Bool { whole != nil }

    /// Calls `body` with the table's keys chunk by chunk in row order (whole little-endian
    /// keys: a chunk is a multiple of 64 bytes), with the row of each chunk's first key: one
    /// pass, each chunk's checksum checked in it the first time (the pages released behind, as
    /// every streaming pass does).
    static func forEachChunk(of tensor: ModelTensor, _ body: (_ keys: UnsafeRawBufferPointer, _ firstRow: Int) throws -> Void) throws {
        for part in tensor.parts {
            let file = part.tensor.file, entry = part.tensor.entry
            let checking = file.checksChecksumsOnAccess && !file.checksumsVerified(entry.name)
            var row = part.firstRow
            try file.visitChunks(of: entry, checkingChecksums: checking) { visit in
                guard let chunk = visit.logical else { throw file.chunkError(visit, of: entry) }
                try body(chunk, row)
                row += chunk.count / 8
            }
            if checking { file.markChecksumsVerified(entry.name) }
        }
    }

    static func duplicateError(_ key: UInt64, row: Int, _ tensor: ModelTensor) -> MTLModelError {
        let part = tensor.parts.last { $0.firstRow <= row } ?? tensor.parts[0]
        return MTLModelError(.malformed, "duplicate key \(key) (again at row \(row)): a keyed table maps each id to one row (run mtl-model verify)",
                             file: part.tensor.file.path, location: .init(tensor: tensor.name))
    }
}

/// The rows of the ids one batch holds in each table indexed per batch (`KeyedIndex`): the
/// batch's distinct ids of the field, then one pass over the table's keys that records the row
/// of each of them (a filter of 256 bits an id on the keys' hashes, `mtlm_filter_keys`, skips
/// the probe for all but 1/256 of the keys the batch does not hold). Immutable once built: the
/// parsing thread builds it, the threads computing the batch and checking its chunks read it.
///
/// A key stored twice is refused when the batch holds it; a duplicate among ids no sample of
/// the batch holds does not change any prediction, and `verify` finds it.
final class BatchKeys: Sendable {
    /// The weights whose tables the rows are of: a batch resolved for one model is resolved
    /// again for another (`Predictor.resolveKeys`).
    let owner: ModelWeights
    /// Per field (nil: not indexed per batch): the batch's distinct ids, each at its ordinal,
    /// and the row of each ordinal (-1: not stored).
    private let ordinals: [IDIndex?]
    private let rows: [[Int32]]

    init(_ batch: SampleBatch, weights: ModelWeights) throws {
        owner = weights
        let fields = weights.fields
        var ordinals = [IDIndex?](repeating: nil, count: fields.count)
        var rows = [[Int32]](repeating: [], count: fields.count)
        for (f, field) in fields.enumerated() {
            guard let keys = field.keys, !keys.isWhole else { continue }
            let wanted = Self.distinctIDs(of: batch, field: f)
            var found = [Int32](repeating: -1, count: wanted.hashes.count)
            var candidates = [UInt32](repeating: 0, count: Self.sliceKeyCount + 8)
            let bits = Self.filterBits(idCount: wanted.hashes.count)
            try Self.filter(wanted.hashes, bits: bits).withUnsafeBufferPointer { filter in
                try KeyedIndex.forEachChunk(of: keys.tensor) { chunk, firstRow in
                    let column = KeyColumn(chunk)
                    // Slices bound the candidates' buffer (a chunk may be up to 1 GiB).
                    for start in stride(from: 0, to: column.count, by: Self.sliceKeyCount) {
                        let count = min(Self.sliceKeyCount, column.count - start)
                        let kept = candidates.withUnsafeMutableBufferPointer {
                            mtlm_filter_keys(chunk.baseAddress! + 8 * start, count, filter.baseAddress!, UInt32(bits), $0.baseAddress!)
                        }
                        for candidate in candidates[..<kept] {
                            let local = start + Int(candidate), key = column[local]
                            let ordinal = Int(wanted.index.row(of: key, hash: SplitMix64.mix(key)))
                            guard ordinal >= 0 else { continue }
                            guard found[ordinal] < 0 else { throw KeyedIndex.duplicateError(key, row: firstRow + local, keys.tensor) }
                            found[ordinal] = Int32(firstRow + local)
                        }
                    }
                }
            }
            ordinals[f] = wanted.index
            rows[f] = found
        }
        self.ordinals = ordinals
        self.rows = rows
    }

    @inline(__always)
    func row(of key: UInt64, field: Int) -> Int {
        let ordinal = Int(ordinals[field]!.row(of: key, hash: SplitMix64.mix(key)))
        return ordinal < 0 ? -1 : Int(rows[field][ordinal])
    }

    private static let sliceKeyCount = 1 << 16

    /// The distinct ids of `field` in `batch`, each at its ordinal, with their hashes.
    private static func distinctIDs(of batch: SampleBatch, field: Int) -> (index: IDIndex, hashes: [UInt64]) {
        let entries = batch.entryField.indices.filter { batch.entryField[$0] == Int32(field) }
        let capacity = max(16, entries.count * 2)
        let index = IDIndex(capacity: capacity)
        index.clear(capacity: capacity)
        var hashes: [UInt64] = []
        for entry in entries {
            let id = batch.entryID[entry], hash = SplitMix64.mix(id)
            guard index.row(of: id, hash: hash) < 0 else { continue }
            index.insert(id, hash: hash, row: Int32(hashes.count))
            hashes.append(hash)
        }
        return (index, hashes)
    }

    /// Bits of the filter of `idCount` ids: 256 a id (a key the batch does not hold passes
    /// with a chance of 1/256 at most: a probe is a cache miss and a branch no predictor
    /// learns), 64 Kibit to 16 Mibit (2 MiB, 64k ids or more).
    static func filterBits(idCount: Int) -> Int {
        var bits = 16
        while bits < 24 && (1 << bits) < idCount * 256 { bits += 1 }
        return bits
    }

    /// The filter of 2^bits bits with the bit of each hash's top `bits` bits set.
    private static func filter(_ hashes: [UInt64], bits: Int) -> [UInt64] {
        var filter = [UInt64](repeating: 0, count: 1 << (bits - 6))
        for hash in hashes {
            let bit = hash >> UInt64(64 - bits)
            filter[Int(bit >> 6)] |= 1 << (bit & 63)
        }
        return filter
    }
}

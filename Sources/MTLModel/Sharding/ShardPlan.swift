import Foundation

/// What a reshard of one model into N shards puts where: per field the rows of each shard
/// (contiguous ranges of `direct` / `modulo` tables; for `keyed` tables the ids whose bucket is
/// in the shard's bucket range, bucket by bucket in source order), the source of every table
/// tensor, and the root's name and id. Built once (one pass over each keyed table's keys, to
/// count the rows of every bucket); shards then read only their rows.
///
/// `@unchecked Sendable`: immutable after `init`; `RowSource`s are only read.
final class ShardPlan: @unchecked Sendable {
    enum Rows {
        case range(Range<Int>)
        case list([Int])
        /// A keyed shard of more rows than `ModelSharder.Options.rowListCapacity`: in runs.
        case runs(KeyedRuns)

        var count: Int {
            switch self {
            case .range(let range): range.count
            case .list(let list): list.count
            case .runs(let runs): runs.count
            }
        }
    }

    private struct KeyedLayout {
        var bucketBits: Int
        var seed: UInt64
        var counts: [UInt32]
        /// First model row of each shard's buckets, and the total: N + 1 entries.
        var shardStarts: [UInt64]
    }

    let shardCount: Int
    let modelID: [UInt8]
    /// The root's file name, which the shards record.
    let rootFileName: String
    let provenance: Provenance
    let writerOptions: ModelWriter.Options
    private let rowListCapacity: Int
    private let fields: [Architecture.Field]
    private let keyed: [String: KeyedLayout]
    private let sources: [String: RowSource]

    /// The plan of writing `model` at `output`, `concurrentShards` shards at a time (by default
    /// as many as the options' threads allow; a task writes one).
    init(_ model: Model, options: ModelSharder.Options, output: String, concurrentShards: Int? = nil) throws {
        shardCount = options.shardCount
        modelID = options.modelID ?? (0..<ShardNaming.modelIDByteCount).map { _ in UInt8.random(in: 0...255) }
        guard modelID.count == ShardNaming.modelIDByteCount else {
            throw MTLModelError(.invalidArgument, "a model id is \(ShardNaming.modelIDByteCount) bytes")
        }
        rootFileName = (output as NSString).lastPathComponent
        provenance = Provenance.derived(from: model.file, source: options.source, createdUnixSeconds: options.createdUnixSeconds)
        writerOptions = options.writerOptions(concurrentShards: concurrentShards ?? options.shardsAtOnce)
        rowListCapacity = options.rowListCapacity
        fields = model.architecture.fields
        var sources: [String: RowSource] = [:]
        for entry in model.tensors where TensorName(entry.name)?.tableField != nil {
            sources[entry.name] = try RowSource(model.tensor(entry), threadCount: options.threadCount)
        }
        self.sources = sources
        var keyed: [String: KeyedLayout] = [:]
        if options.shardCount > 1 {
            for field in fields where field.mapping == .keyed {
                let existing = model.file.manifest.shards?.files.first?.parts.first { $0.field == field.name }
                let bits = options.bucketBits ?? existing.map { Int($0.bucketBits) } ?? ShardLayout.defaultBucketBits
                let seed = options.hashSeed ?? existing?.hashSeed ?? 0
                keyed[field.name] = try Self.layout(keys: sources[TensorName.keys(field.name).description]!, bits: bits, seed: seed,
                                                    shardCount: options.shardCount)
            }
        }
        self.keyed = keyed
    }

    func source(_ name: String) -> RowSource { sources[name]! }


    /// The parts shard `shard` (0-based) holds, one per field in field order.
    func parts(of shard: Int) -> [TablePart] {
        fields.map { field in
            if let layout = keyed[field.name] {
                return TablePart(field: field.name, rows: layout.shardStarts[shard]..<layout.shardStarts[shard + 1],
                                 bucketBits: UInt32(layout.bucketBits), hashSeed: layout.seed,
                                 buckets: ShardLayout.part(shard, of: shardCount, total: UInt64(1) << UInt64(layout.bucketBits)))
            }
            return TablePart(field: field.name, rows: ShardLayout.part(shard, of: shardCount, total: UInt64(field.vocabSize)))
        }
    }

    /// The source rows of `field` that shard `shard` (0-based) holds, in its order; nil: the
    /// whole table in the model's order (one file).
    func rows(of field: String, shard: Int?) throws -> Rows {
        let vocab = fields.first { $0.name == field }!.vocabSize
        guard let shard else { return .range(0..<vocab) }
        guard let layout = keyed[field] else {
            let part = ShardLayout.part(shard, of: shardCount, total: UInt64(vocab))
            return .range(Int(part.lowerBound)..<Int(part.upperBound))
        }
        // A counting sort by bucket: each bucket's first slot from the counts, then one pass
        // over the keys in source order places each row (so a bucket keeps the source order).
        let buckets = ShardLayout.part(shard, of: shardCount, total: UInt64(1) << UInt64(layout.bucketBits))
        let keys = sources[TensorName.keys(field).description]!
        if layout.shardStarts[shard + 1] - layout.shardStarts[shard] > UInt64(rowListCapacity) {
            return .runs(try KeyedRuns(keys: keys, counts: Array(layout.counts[Int(buckets.lowerBound)..<Int(buckets.upperBound)]),
                                       capacity: rowListCapacity) { key in
                let bucket = ShardLayout.bucket(key, seed: layout.seed, bucketBits: layout.bucketBits)
                return buckets.contains(bucket) ? Int(bucket - buckets.lowerBound) : nil
            })
        }
        var next = [Int](repeating: 0, count: buckets.count)
        var total = 0
        for (slot, bucket) in buckets.enumerated() {
            next[slot] = total
            total += Int(layout.counts[Int(bucket)])
        }
        var list = [Int](repeating: 0, count: total)
        try Self.forEachKey(keys) { row, key in
            let bucket = ShardLayout.bucket(key, seed: layout.seed, bucketBits: layout.bucketBits)
            guard buckets.contains(bucket) else { return }
            let slot = Int(bucket - buckets.lowerBound)
            list[next[slot]] = row
            next[slot] += 1
        }
        return .list(list)
    }

    /// Rows per bucket of a keyed table, and where each shard's buckets start.
    private static func layout(keys: RowSource, bits: Int, seed: UInt64, shardCount: Int) throws -> KeyedLayout {
        var counts = [UInt32](repeating: 0, count: 1 << bits)
        var overflow = false
        try forEachKey(keys) { _, key in
            let bucket = Int(ShardLayout.bucket(key, seed: seed, bucketBits: bits))
            if counts[bucket] == .max { overflow = true } else { counts[bucket] += 1 }
        }
        guard !overflow else {
            throw MTLModelError(.unsupported, "a bucket holds 2^32 rows: use more bucket bits", location: .init(tensor: keys.entry.name))
        }
        var starts: [UInt64] = [0]
        for shard in 0..<shardCount {
            let range = ShardLayout.part(shard, of: shardCount, total: UInt64(counts.count))
            starts.append(starts.last! + counts[Int(range.lowerBound)..<Int(range.upperBound)].reduce(0) { $0 + UInt64($1) })
        }
        return KeyedLayout(bucketBits: bits, seed: seed, counts: counts, shardStarts: starts)
    }

    /// Every key (its 64 bits, as the bucket hash takes them) with its model row, in order.
    static func forEachKey(_ keys: RowSource, _ body: (Int, UInt64) -> Void) throws {
        var row = 0
        let total = keys.rowByteCount == 0 ? 0 : Int(keys.entry.byteCount) / keys.rowByteCount
        keys.visit(0..<total) { bytes in
            for offset in stride(from: 0, to: bytes.count, by: 8) {
                body(row, UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)))
                row += 1
            }
        }
        keys.releasePages()
    }
}

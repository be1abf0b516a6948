import Foundation

/// Writes any model — one file or sharded — as N shards and a root (format 1.3), or, with N = 1,
/// as one ordinary file (consolidation). Every tensor is copied byte for byte: `direct` and
/// `modulo` tables by contiguous row ranges, `keyed` tables by buckets of the seeded id hash
/// (docs/FORMAT.md "Sharded models"), the rows of a bucket in their order in the source.
///
/// Each shard is an independent task (`writeShard`): it reads only the source rows it holds
/// and writes one file atomically, so shards go to several threads here and to several
/// machines in issue #15. The root is written last: its rename is the commit.
public struct ModelSharder: Sendable {
    public struct Options: Sendable {
        public var shardCount: Int
        /// Threads in all: up to that many shards written at once, the threads left over
        /// shared among their writers; nil: one shard at a time, written with every core.
        public var threadCount: Int?
        /// Bucket bits of keyed tables; nil: the source's when it is sharded, else 16.
        public var bucketBits: Int?
        /// Hash seed of keyed tables; nil: the source's when it is sharded, else 0.
        public var hashSeed: UInt64?
        /// The root's model id; nil: 16 random bytes (a plan fixes it so reruns write the same).
        public var modelID: [UInt8]?
        /// The files' creation time; nil: now (a plan fixes it so reruns write the same).
        public var createdUnixSeconds: Int64?
        public var synchronize = true
        /// The provenance source of the files written.
        public var source = "shard"
        /// Rows of a keyed shard held as one list; more are spilled in runs (`KeyedRuns`).
        var rowListCapacity = KeyedRuns.defaultCapacity

        public init(shardCount: Int) { self.shardCount = shardCount }

        /// Shards written at once.
        var shardsAtOnce: Int { max(1, min(threadCount ?? 1, shardCount)) }

        /// The writer options of each of `concurrentShards` files written at once: fsync as
        /// asked, and its share of the threads.
        func writerOptions(concurrentShards: Int) -> ModelWriter.Options {
            var options = ModelWriter.Options()
            options.synchronize = synchronize
            if let threadCount { options.threadCount = max(1, threadCount / max(1, concurrentShards)) }
            return options
        }
    }

    public struct Report: Sendable, Codable {
        public struct Shard: Sendable, Codable {
            public var file: String
            public var byteCount: UInt64
            /// Rows of each field, in field order.
            public var rows: [UInt64]
        }
        public var output: String
        public var shardCount: Int
        public var byteCount: UInt64
        public var shards: [Shard]
        /// Shard files of earlier writes of this target removed after the commit.
        public var removedLeftovers: [String]
    }

    public init() {}

    /// Refuses a shard count or bucket bits out of range.
    static func check(_ options: Options) throws {
        guard (1...ReadLimits().maxShardCount).contains(options.shardCount) else {
            throw MTLModelError(.invalidArgument, "--shards must be in 1...\(ReadLimits().maxShardCount)")
        }
        if let threads = options.threadCount, threads < 1 { throw MTLModelError(.invalidArgument, "--threads must be at least 1") }
        if let bits = options.bucketBits, !(1...ShardLayout.maxBucketBits).contains(bits) {
            throw MTLModelError(.invalidArgument, "--bucket-bits must be in 1...\(ShardLayout.maxBucketBits)")
        }
    }

    public func shard(_ model: Model, to output: String, options: Options) throws -> Report {
        try Self.check(options)
        if options.shardCount == 1 {
            let plan = try ShardPlan(model, options: options, output: output)
            let written = try writeFile(model, plan: plan, shard: nil, to: output)
            return Report(output: output, shardCount: 1, byteCount: written.fileByteCount, shards: [], removedLeftovers: [])
        }
        // Every path is checked before anything is written (no shard of a write whose root would
        // be refused is made); shards and root are held back until all are written.
        let pending = try PendingOutput(target: output)
        pending.synchronize = options.synchronize
        let paths = try (1...options.shardCount).map { try pending.shardPath($0, of: options.shardCount) }
        let plan = try ShardPlan(model, options: options, output: output)
        let results = WorkResults<Result<ShardFile, Error>>(count: options.shardCount)
        DispatchQueue.concurrentPerform(iterations: options.shardsAtOnce) { _ in
            while let index = results.claim() {
                results.set(index, Result { try writeShard(index + 1, model: model, plan: plan, to: paths[index]) })
            }
        }
        let files = try results.all.map { try $0!.get() }
        return try commit(model, files: files, into: pending, modelID: plan.modelID, provenance: plan.provenance,
                          writerOptions: options.writerOptions(concurrentShards: 1))
    }

    /// Writes the root naming `files` into `pending` with `writerOptions`, commits it, and
    /// reports what was written.
    func commit(_ model: Model, files: [ShardFile], into pending: PendingOutput, modelID: [UInt8], provenance: Provenance,
                writerOptions: ModelWriter.Options, output: String? = nil) throws -> Report {
        try writeRoot(model, files: files, to: pending.path, modelID: modelID, provenance: provenance, options: writerOptions)
        try pending.commit()
        let rootByteCount = try ModelFile(path: pending.target).fileByteCount
        return Report(output: output ?? pending.target, shardCount: files.count, byteCount: rootByteCount + files.reduce(0) { $0 + $1.byteCount },
                      shards: files.enumerated().map { .init(file: ShardNaming.fileName(root: pending.targetFileName, index: $0 + 1, count: files.count),
                                                            byteCount: $1.byteCount, rows: $1.parts.map(\.rowCount)) },
                      removedLeftovers: pending.removedLeftovers)
    }

    /// Shard `index` (1-based) of the plan: its rows of every table, written atomically at
    /// `path`. Reads nothing but those rows (and, for keyed tables, the keys).
    func writeShard(_ index: Int, model: Model, plan: ShardPlan, to path: String) throws -> ShardFile {
        let parts = plan.parts(of: index - 1)
        let identity = ShardIdentity(modelID: plan.modelID, index: UInt32(index), count: UInt32(plan.shardCount),
                                     rootFileName: plan.rootFileName, parts: parts)
        let written = try writeFile(model, plan: plan, shard: (index - 1, identity), to: path)
        return ShardFile(written: written, path: path, parts: parts)
    }

    /// The root: the tensors that are not tables, and the shard table.
    @discardableResult
    private func writeRoot(_ model: Model, files: [ShardFile], to output: String, modelID: [UInt8], provenance: Provenance,
                           options: ModelWriter.Options) throws -> ModelWriter.Written {
        let writer = try ModelWriter(path: output, options: options)
        for entry in model.tensors where TensorName(entry.name)?.tableField == nil {
            try copyWhole(model.tensor(entry), to: writer)
        }
        let tensors = model.tensors.filter { TensorName($0.name)?.tableField != nil }
            .map { ShardedTensor(name: $0.name, dtype: $0.dtype, shape: $0.shape, role: $0.role) }
        return try writer.finish(architecture: model.architecture, provenance: provenance, metadata: model.manifest.metadata,
                                 shards: ShardTable(modelID: modelID, tensors: tensors, files: files))
    }

    /// One file: a shard (its table rows only) or, with no shard, the whole model.
    private func writeFile(_ model: Model, plan: ShardPlan, shard: (index: Int, identity: ShardIdentity)?,
                           to path: String) throws -> ModelWriter.Written {
        let writer = try ModelWriter(path: path, options: plan.writerOptions)
        var rowsOf: [String: ShardPlan.Rows] = [:]  // a keyed field's row list serves all its tensors
        for entry in model.tensors {
            guard let field = TensorName(entry.name)?.tableField else {
                if shard == nil { try copyWhole(model.tensor(entry), to: writer) }
                continue
            }
            let rows = try rowsOf[field] ?? plan.rows(of: field, shard: shard?.index)
            rowsOf[field] = rows
            try copyRows(plan.source(entry.name), rows, to: writer)
        }
        return try writer.finish(architecture: model.architecture, provenance: plan.provenance,
                                 metadata: shard == nil ? model.manifest.metadata : [], shard: shard?.identity)
    }

    private func copyWhole(_ tensor: ModelTensor, to writer: ModelWriter) throws {
        try tensor.withBytes { bytes in
            try writer.writeTensor(tensor.name, dtype: tensor.dtype, shape: tensor.shape, role: tensor.entry.role, bytes: bytes)
            Progress.advance(bytes.count)
        }
    }

    /// Rows of one table tensor, in the order of `rows`: a range in windows, a list in gathered
    /// windows.
    private func copyRows(_ source: RowSource, _ rows: ShardPlan.Rows, to writer: ModelWriter) throws {
        let entry = source.entry
        try writer.beginTensor(entry.name, dtype: entry.dtype, shape: [UInt64(rows.count)] + entry.shape.dropFirst(), role: entry.role)
        do {
            switch rows {
            case .range(let range):
                // Windows of 64 MiB, each released once written: a row range of a table can be
                // gigabytes, and a mapped page read stays resident until released.
                let window = max(1, (64 << 20) / max(source.rowByteCount, 1))
                for start in stride(from: range.lowerBound, to: range.upperBound, by: window) {
                    let rows = start..<min(start + window, range.upperBound)
                    try source.visit(rows) { try writer.write($0) }
                    source.releasePages(rows: rows)
                    Progress.advance(rows.count * source.rowByteCount)
                }
            case .list(let list):
                try gatherRows(source, list, to: writer)
            case .runs(let runs):
                try runs.forEachChunk { try gatherRows(source, $0, to: writer) }
            }
        }
        source.releasePages()
        try writer.endTensor()
    }

    /// Rows `list` of `source`, in that order, in windows of up to 32 MiB of output rows, each
    /// gathered from the source in ascending order (`RowGather`): the rows of a bucket are
    /// spread over a source in another order (a trainer's).
    private func gatherRows(_ source: RowSource, _ list: [Int], to writer: ModelWriter) throws {
        let window = max(1, min(list.count, max(4096, (32 << 20) / max(source.rowByteCount, 1))))
        var gather = RowGather(sourceRowCount: source.rows.count, capacity: window)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, window * source.rowByteCount), alignment: 16)
        defer { buffer.deallocate() }
        for start in stride(from: 0, to: list.count, by: window) {
            let count = min(window, list.count - start)
            gather.gather(count: count, row: { list[start + $0] }, from: source.rows, into: buffer.baseAddress!) {
                source.releasePages(rows: $0)
            }
            try writer.write(UnsafeRawBufferPointer(rebasing: buffer[..<(count * source.rowByteCount)]))
            Progress.advance(count * source.rowByteCount)
        }
    }
}

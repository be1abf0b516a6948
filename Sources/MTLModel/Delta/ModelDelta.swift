import Foundation

/// Deltas between two models (format 1.2): only the tensors and rows that changed, bound to
/// the base they were made from, and the exact reconstruction of the new model from them.
public enum ModelDelta {
    public struct Summary: Sendable, Codable, Hashable {
        public var unchangedTensors = 0
        public var patchedTensors = 0
        public var fullTensors = 0
        /// Rows stored by patched tensors (changed or added rows).
        public var storedRowCount = 0
        public var deltaByteCount: UInt64 = 0
        public var newByteCount: UInt64 = 0

        /// The counts of another file's delta added (the byte counts are the whole delta's).
        mutating func add(_ other: Summary) {
            unchangedTensors += other.unchangedTensors
            patchedTensors += other.patchedTensors
            fullTensors += other.fullTensors
            storedRowCount += other.storedRowCount
        }
    }

    /// A patch is stored only when it is smaller than this fraction of the tensor.
    static let patchFraction = 0.5

    /// FNV-1a 64 over the model's architecture config and its tensor directory (names,
    /// dtypes, shapes, chunking, chunk checksums): what a delta is bound to.
    public static func contentHash(_ model: ModelFile) -> UInt64 {
        var hasher = FNV1a()
        func add<T: FixedWidthInteger>(_ value: T) {
            withUnsafeBytes(of: value.littleEndian) { hasher.add($0) }
        }
        func add(_ text: String) {
            add(UInt64(text.utf8.count))
            hasher.add(text.utf8)
        }
        add(model.architecture.config.serialized())
        for entry in model.tensors.sorted(by: { $0.name < $1.name }) {
            add(entry.name)
            add(entry.dtype.rawValue)
            add(UInt64(entry.shape.count))
            entry.shape.forEach { add($0) }
            add(entry.compression.rawValue)
            add(entry.chunkByteCount)
            entry.chunkCRC32.forEach { add($0) }
        }
        // A sharded model's files (format 1.4) are bound to their place in it as well: a
        // root to its table's tensors and parts, a shard to its index and parts.
        func add(_ parts: [TablePart]) {
            add(UInt64(parts.count))
            for part in parts {
                add(part.field)
                [part.firstRow, part.rowCount, UInt64(part.bucketBits), part.hashSeed, UInt64(part.firstBucket), UInt64(part.bucketCount)].forEach { add($0) }
            }
        }
        if let table = model.manifest.shards {
            add("shards")
            add(UInt64(table.tensors.count))
            for tensor in table.tensors {
                add(tensor.name)
                add(tensor.dtype.rawValue)
                add(tensor.role.rawValue)
                add(UInt64(tensor.shape.count))
                tensor.shape.forEach { add($0) }
            }
            add(UInt64(table.files.count))
            table.files.forEach { add($0.parts) }
        }
        if let shard = model.manifest.shard {
            add("shard")
            add(shard.index)
            add(shard.count)
            add(shard.parts)
        }
        return hasher.value
    }

    /// The directory the rebuilt model will have (names, dtypes, shapes, roles: what its
    /// structure depends on), with the delta's architecture.
    static func rebuiltManifest(_ manifest: Manifest, _ recipe: DeltaManifest) -> Manifest {
        let tensors = recipe.tensors.map {
            TensorEntry(name: $0.name, dtype: $0.dtype, shape: $0.shape, role: $0.role, offset: 0, storedByteCount: 0, compression: .none,
                        chunkByteCount: 0, chunkCRC32: [], chunkStoredByteCounts: [])
        }
        return Manifest(provenance: recipe.newProvenance, architecture: manifest.architecture, tensors: tensors, metadata: manifest.metadata,
                        shards: manifest.shards, shard: manifest.shard)
    }

    /// Bytes of one row (a slice along the first dimension) of a tensor of `dtype` and `shape`.
    static func rowByteCount(_ dtype: DType, _ shape: [UInt64]) -> Int? {
        guard let first = shape.first, first > 0, let total = dtype.storedByteCount(shape: shape) else { return nil }
        return Int(total / first)
    }

    /// Writes the delta that turns `base` into `new`: one file, or for two sharded models split
    /// the same way a sharded delta (`ShardedDelta`).
    public static func make(base: Model, new: Model, to output: String) throws -> Summary {
        if base.isSharded || new.isSharded { return try ShardedDelta.make(base: base, new: new, to: output) }
        var summary = Summary(unchangedTensors: 0, patchedTensors: 0, fullTensors: 0, storedRowCount: 0, deltaByteCount: 0,
                              newByteCount: new.file.fileByteCount)
        let writer = try ModelWriter(path: output)
        let tensors = try writeChanges(base: base.file, new: new.file, into: writer, summary: &summary)
        let written = try writer.finish(architecture: new.architecture, provenance: provenance(base, new), metadata: new.manifest.metadata,
                                        delta: DeltaManifest(baseContentHash: contentHash(base.file), tensors: tensors, newProvenance: new.manifest.provenance))
        summary.deltaByteCount = written.fileByteCount
        return summary
    }

    /// The delta file's own provenance (the new model's is in its recipe).
    static func provenance(_ base: Model, _ new: Model) -> Provenance {
        Provenance(createdUnixSeconds: Int64(Date().timeIntervalSince1970), source: "delta \(base.path) \(new.path)")
    }

    /// Writes into `writer` what turns the file `base` into the file `new` (tensor by tensor:
    /// unchanged, patched by rows, or whole), and returns the recipe of `new`'s tensors.
    static func writeChanges(base: ModelFile, new: ModelFile, into writer: ModelWriter, summary: inout Summary) throws -> [DeltaManifest.Tensor] {
        var entries: [DeltaManifest.Tensor] = []
        for entry in new.tensors {
            let old = base.entry(named: entry.name)
            // Progress: the new tensor and its base, read once each.
            defer { Progress.advance(Int(entry.storedByteCount + (old?.storedByteCount ?? 0))) }
            try new.requireValid(entry)
            if let old { try base.requireValid(old) }
            let source = try new.withTensorBytes(entry.name) { newBytes in
                try writeChange(entry, newBytes, old: old, base: base, new: new, writer: writer, summary: &summary)
            }
            new.file.release(entry.offset, entry.storedByteCount)
            switch source {
            case .base: summary.unchangedTensors += 1
            case .rows: summary.patchedTensors += 1
            case .full: summary.fullTensors += 1
            }
            entries.append(.init(name: entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role, source: source))
        }
        return entries
    }

    /// Writes what the delta holds of tensor `entry` of `new` (its bytes `newBytes`): nothing
    /// when the base holds it identically, its changed rows when they are few enough, else the
    /// whole tensor; returns which.
    private static func writeChange(_ entry: TensorEntry, _ newBytes: UnsafeRawBufferPointer, old: TensorEntry?, base: ModelFile, new: ModelFile,
                                    writer: ModelWriter, summary: inout Summary) throws -> DeltaManifest.Source {
        if let old, old.dtype == entry.dtype {
            // Both tensors are compared in windows whose mapped pages are released
            // once compared: two tables larger than memory stay out of the resident set.
            let release = { (bytes: Range<Int>) in
                for (file, tensor) in [(base, old), (new, entry)] where tensor.compression == .none && bytes.upperBound <= Int(tensor.byteCount) {
                    file.file.release(tensor.offset + UInt64(bytes.lowerBound), UInt64(bytes.count))
                }
            }
            defer { base.file.release(old.offset, old.storedByteCount) }
            if old.shape == entry.shape, try base.withTensorBytes(old.name, { changedRows(old: $0, new: newBytes, rowBytes: 1, first: true, release: release).isEmpty }) {
                return .base
            }
            if let rowBytes = rowByteCount(entry.dtype, entry.shape), !entry.shape.isEmpty, old.shape.dropFirst() == entry.shape.dropFirst() {
                let changed = try base.withTensorBytes(old.name) { oldBytes in
                    changedRows(old: oldBytes, new: newBytes, rowBytes: rowBytes, release: release)
                }
                if Double(changed.count * (rowBytes + 8)) < patchFraction * Double(newBytes.count) {
                    try writePatch(entry, changed, newBytes, rowBytes: rowBytes, writer: writer, release: release)
                    summary.storedRowCount += changed.count
                    return .rows
                }
            }
        }
        // Stored whole: written in windows, each released once written.
        try writer.beginTensor(entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role)
        for start in stride(from: 0, to: newBytes.count, by: 64 << 20) {
            let end = min(start + (64 << 20), newBytes.count)
            try writer.write(UnsafeRawBufferPointer(rebasing: newBytes[start..<end]))
            if entry.compression == .none { new.file.release(entry.offset + UInt64(start), UInt64(end - start)) }
        }
        try writer.endTensor()
        return .full
    }

    /// Indices of the rows of `new` that the base does not hold identically at the same index
    /// (with `first`, only the first of them), compared in windows of 64 MiB, each window's
    /// bytes handed to `release` once compared. A window that compares equal whole (the usual
    /// case for a small delta) costs one `memcmp`.
    static func changedRows(old: UnsafeRawBufferPointer, new: UnsafeRawBufferPointer, rowBytes: Int, first: Bool = false,
                            windowBytes: Int = 64 << 20, release: (Range<Int>) -> Void = { _ in }) -> [UInt64] {
        let newRows = new.count / rowBytes, oldRows = old.count / rowBytes
        let window = max(1, windowBytes / rowBytes)
        var changed: [UInt64] = []
        for start in stride(from: 0, to: newRows, by: window) {
            let end = min(start + window, newRows), common = min(end, oldRows)
            if common <= start || memcmp(old.baseAddress! + start * rowBytes, new.baseAddress! + start * rowBytes, (common - start) * rowBytes) != 0 {
                for row in start..<end where row >= oldRows || memcmp(old.baseAddress! + row * rowBytes, new.baseAddress! + row * rowBytes, rowBytes) != 0 {
                    changed.append(UInt64(row))
                    if first { break }
                }
            } else if end > common {
                changed.append(contentsOf: (common..<end).map { UInt64($0) })
            }
            release(start * rowBytes..<end * rowBytes)
            if first && !changed.isEmpty { break }
        }
        return changed
    }

    /// Writes the changed rows (ascending) and their values, releasing the pages behind them
    /// every 64 MiB of the tensor (`release`): rows spread over a large table would otherwise
    /// map all of it again.
    private static func writePatch(_ entry: TensorEntry, _ rows: [UInt64], _ newBytes: UnsafeRawBufferPointer, rowBytes: Int,
                                   writer: ModelWriter, release: (Range<Int>) -> Void) throws {
        try rows.withUnsafeBytes { try writer.writeTensor(DeltaTensorName.rows(entry.name), dtype: .uint64, shape: [UInt64(rows.count)], role: entry.role, bytes: $0) }
        try writer.beginTensor(DeltaTensorName.values(entry.name), dtype: entry.dtype, shape: [UInt64(rows.count)] + entry.shape.dropFirst(), role: entry.role)
        var released = 0
        for row in rows {
            let start = Int(row) * rowBytes
            if start - released >= 64 << 20 {
                release(released..<start)
                released = start
            }
            try writer.write(UnsafeRawBufferPointer(rebasing: newBytes[start..<start + rowBytes]))
        }
        try writer.endTensor()
    }

    /// The problems of a delta's recipe: each patched or full tensor has what it needs
    /// stored, with the right dtype and shape, and nothing else is stored.
    static func structureProblems(_ manifest: Manifest) -> [VerificationProblem] {
        guard let delta = manifest.delta else { return [] }
        var stored = Dictionary(uniqueKeysWithValues: manifest.tensors.map { ($0.name, $0) })
        var problems: [VerificationProblem] = []
        func need(_ name: String, _ dtype: DType, _ shape: (([UInt64]) -> Bool), _ what: String) {
            guard let entry = stored.removeValue(forKey: name) else {
                problems.append(.init(kind: .structure, tensor: name, byteOffset: nil, message: "missing (the delta needs it for \(what))"))
                return
            }
            if entry.dtype != dtype || !shape(entry.shape) {
                problems.append(.init(kind: .structure, tensor: name, byteOffset: nil, message: "is \(entry.dtype) \(entry.shape), which does not fit \(what)"))
            }
        }
        for tensor in delta.tensors {
            switch tensor.source {
            case .base: break
            case .full: need(tensor.name, tensor.dtype, { $0 == tensor.shape }, "the whole tensor")
            case .rows:
                var count: UInt64?
                need(DeltaTensorName.rows(tensor.name), .uint64, { count = $0.first; return $0.count == 1 }, "the rows of \(tensor.name)")
                need(DeltaTensorName.values(tensor.name), tensor.dtype, { $0.first == count && Array($0.dropFirst()) == Array(tensor.shape.dropFirst()) },
                     "the rows of \(tensor.name)")
            }
        }
        for name in stored.keys.sorted() {
            problems.append(.init(kind: .structure, tensor: name, byteOffset: nil, message: "not used by the delta"))
        }
        return problems
    }

    /// Rebuilds the new model from `base` and `delta` at `output`, exactly: one file, or a
    /// sharded model from a sharded base and delta (`ShardedDelta`).
    ///
    /// - Throws: when the delta was made for another base (nothing is written), or when the
    ///   delta or the base is inconsistent with the recipe.
    public static func apply(base: Model, delta: ModelFile, to output: String) throws {
        guard let recipe = delta.manifest.delta else {
            throw MTLModelError(.invalidArgument, "is a model, not a delta", file: delta.path)
        }
        if let shard = delta.manifest.shard {
            throw MTLModelError(.invalidArgument, "is shard \(shard.index) of \(shard.count) of the sharded delta \(shard.rootFileName): apply its root", file: delta.path)
        }
        if base.isSharded || delta.manifest.shards != nil { return try ShardedDelta.apply(base: base, delta: delta, to: output) }
        try check(base: base.file, delta: delta)
        let writer = try ModelWriter(path: output)
        try rebuild(base: base.file, delta: delta, into: writer)
        try writer.finish(architecture: delta.architecture, provenance: recipe.newProvenance, metadata: delta.manifest.metadata)
    }

    /// Refuses a delta file made for another base file, or whose recipe would not rebuild a
    /// valid file (a delta never turns a valid base into an invalid model).
    static func check(base: ModelFile, delta: ModelFile) throws(MTLModelError) {
        let recipe = delta.manifest.delta!
        let hash = contentHash(base)
        guard hash == recipe.baseContentHash else {
            let place = base.manifest.shard == nil ? "this base" : "its base shard \(base.path)"
            throw MTLModelError(.invalidArgument, "was made for another base (content hash \(hex64(recipe.baseContentHash)); \(place) is \(hex64(hash)))",
                                file: delta.path)
        }
        if let problem = structureProblems(delta.manifest).first ?? ModelStructure.problems(rebuiltManifest(delta.manifest, recipe)).first {
            throw MTLModelError(.malformed, problem.message + " (in the model this delta rebuilds)", file: delta.path, location: .init(tensor: problem.tensor))
        }
    }

    /// Writes into `writer` the tensors of the file `delta` rebuilds from the file `base`.
    static func rebuild(base: ModelFile, delta: ModelFile, into writer: ModelWriter) throws {
        for tensor in delta.manifest.delta!.tensors {
            // Progress: the base's tensor (what most of the output is copied from).
            defer { Progress.advance(Int(base.entry(named: tensor.name)?.storedByteCount ?? 0)) }
            func fail(_ message: String) -> MTLModelError {
                MTLModelError(.malformed, message, file: delta.path, location: .init(tensor: tensor.name))
            }
            switch tensor.source {
            case .full:
                try delta.requireValid(delta.entry(named: tensor.name)!)
                try delta.withTensorBytes(tensor.name) { try writer.writeTensor(tensor.name, dtype: tensor.dtype, shape: tensor.shape, role: tensor.role, bytes: $0) }
            case .base:
                guard let old = base.entry(named: tensor.name), old.dtype == tensor.dtype, old.shape == tensor.shape else {
                    throw fail("the base has no tensor of this name, dtype and shape")
                }
                try copy(old, of: base, as: tensor, into: writer)
            case .rows:
                guard let old = base.entry(named: tensor.name), old.dtype == tensor.dtype, old.shape.dropFirst() == tensor.shape.dropFirst(),
                      let rowBytes = rowByteCount(tensor.dtype, tensor.shape) else {
                    throw fail("the base has no tensor whose rows fit")
                }
                try patch(old, of: base, with: tensor, of: delta, rowBytes: rowBytes, into: writer, fail: fail)
            }
        }
    }

    /// The base's tensor `old`, unchanged: chunk by chunk in bounded memory, each chunk's CRC
    /// taken from the base (checked there first, with the values) when the chunks line up.
    private static func copy(_ old: TensorEntry, of base: ModelFile, as tensor: DeltaManifest.Tensor, into writer: ModelWriter) throws {
        try writer.beginTensor(tensor.name, dtype: tensor.dtype, shape: tensor.shape, role: tensor.role)
        try base.requireValid(old)
        if old.compression == .none, old.chunkByteCount == writer.chunkByteCount {
            try base.visitStoredChunks(of: old) { index, _, stored in try writer.write(stored, checkedCRC: old.chunkCRC32[index]) }
        } else {
            try base.visitChunks(of: old, checkingChecksums: false) { visit in
                guard let chunk = visit.logical else { throw base.chunkError(visit, of: old) }
                try writer.write(chunk)
            }
        }
        try writer.endTensor()
    }

    /// The base's tensor `old` with the delta's rows of `tensor` in place.
    private static func patch(_ old: TensorEntry, of base: ModelFile, with tensor: DeltaManifest.Tensor, of delta: ModelFile, rowBytes: Int,
                              into writer: ModelWriter, fail: (String) -> MTLModelError) throws {
        let rows = try delta.withElements(of: DeltaTensorName.rows(tensor.name), as: UInt64.self) { Array($0) }
        let newRowCount = Int(tensor.shape[0]), oldRowCount = Int(old.shape[0])
        // Every row the base lacks must be in the patch; the list must be ascending.
        guard zip(rows, rows.dropFirst()).allSatisfy({ $0 < $1 }), rows.last.map({ $0 < UInt64(newRowCount) }) ?? true,
              newRowCount <= oldRowCount || rows.filter({ $0 >= UInt64(oldRowCount) }).count == newRowCount - oldRowCount else {
            throw fail("the row list is not ascending, runs past the tensor, or misses rows the base lacks")
        }
        try writer.beginTensor(tensor.name, dtype: tensor.dtype, shape: tensor.shape, role: tensor.role)
        try base.requireValid(old)
        try delta.requireValid(delta.entry(named: DeltaTensorName.values(tensor.name))!)
        try base.withTensorBytes(old.name) { oldBytes in
            try delta.withTensorBytes(DeltaTensorName.values(tensor.name)) { values in
                // Runs of rows, each in one write: the base's rows up to the next patched row
                // (all below the base's row count: the guard above), then consecutive patched
                // rows. A small delta is a few writes of large runs, not one write a row.
                var row = 0, next = 0, released = 0
                while row < newRowCount {
                    if next < rows.count && rows[next] == UInt64(row) {
                        var end = next + 1
                        while end < rows.count && rows[end] == rows[end - 1] + 1 { end += 1 }
                        try writer.write(UnsafeRawBufferPointer(rebasing: values[next * rowBytes..<end * rowBytes]))
                        row += end - next
                        next = end
                    } else {
                        let stop = next < rows.count ? Int(rows[next]) : newRowCount
                        try copyReleasing(oldBytes, rows: row..<stop, rowBytes: rowBytes, of: old, in: base, released: &released, into: writer)
                        row = stop
                    }
                }
            }
        }
        try writer.endTensor()
        base.file.release(old.offset, old.storedByteCount)
    }

    /// Writes rows `rows` of the base's mapped tensor in windows of 64 MiB, releasing each
    /// window's pages once written (`released`: bytes of the tensor released so far), so that
    /// a patched table of any size keeps a bounded resident set.
    private static func copyReleasing(_ bytes: UnsafeRawBufferPointer, rows: Range<Int>, rowBytes: Int, of entry: TensorEntry, in file: ModelFile,
                                      released: inout Int, into writer: ModelWriter) throws {
        let window = max(1, (64 << 20) / max(rowBytes, 1))
        for start in stride(from: rows.lowerBound, to: rows.upperBound, by: window) {
            let end = min(start + window, rows.upperBound)
            try writer.write(UnsafeRawBufferPointer(rebasing: bytes[start * rowBytes..<end * rowBytes]))
            if entry.compression == .none, end * rowBytes - released >= 64 << 20 {
                file.file.release(entry.offset + UInt64(released), UInt64(end * rowBytes - released))
                released = end * rowBytes
            }
        }
    }
}

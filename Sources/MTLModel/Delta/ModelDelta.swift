import Foundation

/// Deltas between two models (format 1.2): only the tensors and rows that changed, bound to
/// the base they were made from, and the exact reconstruction of the new model from them.
public enum ModelDelta {
    public struct Summary: Sendable, Codable, Hashable {
        public var unchangedTensors: Int
        public var patchedTensors: Int
        public var fullTensors: Int
        /// Rows stored by patched tensors (changed or added rows).
        public var storedRowCount: Int
        public var deltaByteCount: UInt64
        public var newByteCount: UInt64
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
        return hasher.value
    }

    /// The directory the rebuilt model will have (names, dtypes, shapes, roles: what its
    /// structure depends on), with the delta's architecture.
    static func rebuiltManifest(_ manifest: Manifest, _ recipe: DeltaManifest) -> Manifest {
        let tensors = recipe.tensors.map {
            TensorEntry(name: $0.name, dtype: $0.dtype, shape: $0.shape, role: $0.role, offset: 0, storedByteCount: 0, compression: .none,
                        chunkByteCount: 0, chunkCRC32: [], chunkStoredByteCounts: [])
        }
        return Manifest(provenance: recipe.newProvenance, architecture: manifest.architecture, tensors: tensors, metadata: manifest.metadata)
    }

    /// Bytes of one row (a slice along the first dimension) of a tensor of `dtype` and `shape`.
    static func rowByteCount(_ dtype: DType, _ shape: [UInt64]) -> Int? {
        guard let first = shape.first, first > 0, let total = dtype.storedByteCount(shape: shape) else { return nil }
        return Int(total / first)
    }

    /// Writes the delta that turns `base` into `new`.
    public static func make(base checkedBase: Model, new checkedNew: Model, to output: String) throws -> Summary {
        try checkedBase.requireOneFile(for: "delta")
        try checkedNew.requireOneFile(for: "delta")
        let base = checkedBase.file, new = checkedNew.file
        var summary = Summary(unchangedTensors: 0, patchedTensors: 0, fullTensors: 0, storedRowCount: 0, deltaByteCount: 0,
                              newByteCount: new.fileByteCount)
        var entries: [DeltaManifest.Tensor] = []
        let writer = try ModelWriter(path: output)
        for entry in new.tensors {
            var source = DeltaManifest.Source.full
            try new.requireValid(entry)
            if let old = base.entry(named: entry.name) { try base.requireValid(old) }
            try new.withTensorBytes(entry.name) { newBytes in
                if let old = base.entry(named: entry.name), old.dtype == entry.dtype {
                    if old.shape == entry.shape, try base.withTensorBytes(old.name, { $0.elementsEqual(newBytes) }) {
                        source = .base
                        return
                    }
                    if let rowBytes = rowByteCount(entry.dtype, entry.shape), !entry.shape.isEmpty, old.shape.dropFirst() == entry.shape.dropFirst() {
                        let changed = try base.withTensorBytes(old.name) { oldBytes in
                            changedRows(old: oldBytes, new: newBytes, rowBytes: rowBytes)
                        }
                        if Double(changed.count * (rowBytes + 8)) < patchFraction * Double(newBytes.count) {
                            try writePatch(entry, changed, newBytes, rowBytes: rowBytes, writer: writer)
                            summary.storedRowCount += changed.count
                            source = .rows
                            return
                        }
                    }
                }
                try writer.writeTensor(entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role, bytes: newBytes)
            }
            new.file.release(entry.offset, entry.storedByteCount)
            switch source {
            case .base: summary.unchangedTensors += 1
            case .rows: summary.patchedTensors += 1
            case .full: summary.fullTensors += 1
            }
            entries.append(.init(name: entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role, source: source))
        }
        let delta = DeltaManifest(baseContentHash: contentHash(base), tensors: entries, newProvenance: new.manifest.provenance)
        let written = try writer.finish(architecture: new.architecture,
                          provenance: Provenance(createdUnixSeconds: Int64(Date().timeIntervalSince1970), source: "delta \(base.path) \(new.path)"),
                          metadata: new.manifest.metadata, delta: delta)
        summary.deltaByteCount = written.fileByteCount
        return summary
    }

    /// Indices of the rows of `new` that the base does not hold identically at the same index.
    static func changedRows(old: UnsafeRawBufferPointer, new: UnsafeRawBufferPointer, rowBytes: Int) -> [UInt64] {
        let newRows = new.count / rowBytes, oldRows = old.count / rowBytes
        var changed: [UInt64] = []
        for row in 0..<newRows {
            if row >= oldRows || memcmp(old.baseAddress! + row * rowBytes, new.baseAddress! + row * rowBytes, rowBytes) != 0 {
                changed.append(UInt64(row))
            }
        }
        return changed
    }

    private static func writePatch(_ entry: TensorEntry, _ rows: [UInt64], _ newBytes: UnsafeRawBufferPointer, rowBytes: Int,
                                   writer: ModelWriter) throws {
        try rows.withUnsafeBytes { try writer.writeTensor(DeltaTensorName.rows(entry.name), dtype: .uint64, shape: [UInt64(rows.count)], role: entry.role, bytes: $0) }
        try writer.beginTensor(DeltaTensorName.values(entry.name), dtype: entry.dtype, shape: [UInt64(rows.count)] + entry.shape.dropFirst(), role: entry.role)
        for row in rows {
            try writer.write(UnsafeRawBufferPointer(rebasing: newBytes[Int(row) * rowBytes..<(Int(row) + 1) * rowBytes]))
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

    /// Rebuilds the new model from `base` and `delta` at `output`, exactly.
    ///
    /// - Throws: when the delta was made for another base (nothing is written), or when the
    ///   delta or the base is inconsistent with the recipe.
    public static func apply(base checkedBase: Model, delta: ModelFile, to output: String) throws {
        try checkedBase.requireOneFile(for: "apply")
        guard let recipe = delta.manifest.delta else {
            throw MTLModelError(.invalidArgument, "is a model, not a delta", file: delta.path)
        }
        let base = checkedBase.file
        let hash = contentHash(base)
        guard hash == recipe.baseContentHash else {
            throw MTLModelError(.invalidArgument, String(format: "was made for another base (content hash %016llx; this base is %016llx)", recipe.baseContentHash, hash),
                                file: delta.path)
        }
        // The delta's own structure, then that of the model it would rebuild: a delta never
        // turns a valid base into an invalid model.
        if let problem = structureProblems(delta.manifest).first ?? ModelStructure.problems(rebuiltManifest(delta.manifest, recipe)).first {
            throw MTLModelError(.malformed, problem.message + " (in the model this delta rebuilds)", file: delta.path, location: .init(tensor: problem.tensor))
        }
        let writer = try ModelWriter(path: output)
        for tensor in recipe.tensors {
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
                try base.requireValid(old)
                try base.withTensorBytes(old.name) { try writer.writeTensor(tensor.name, dtype: tensor.dtype, shape: tensor.shape, role: tensor.role, bytes: $0) }
                base.file.release(old.offset, old.storedByteCount)
            case .rows:
                guard let old = base.entry(named: tensor.name), old.dtype == tensor.dtype, old.shape.dropFirst() == tensor.shape.dropFirst(),
                      let rowBytes = rowByteCount(tensor.dtype, tensor.shape) else {
                    throw fail("the base has no tensor whose rows fit")
                }
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
                        var next = 0
                        for row in 0..<newRowCount {
                            if next < rows.count && rows[next] == UInt64(row) {
                                try writer.write(UnsafeRawBufferPointer(rebasing: values[next * rowBytes..<(next + 1) * rowBytes]))
                                next += 1
                            } else {
                                try writer.write(UnsafeRawBufferPointer(rebasing: oldBytes[row * rowBytes..<(row + 1) * rowBytes]))
                            }
                        }
                    }
                }
                try writer.endTensor()
                base.file.release(old.offset, old.storedByteCount)
            }
        }
        try writer.finish(architecture: delta.architecture, provenance: recipe.newProvenance, metadata: delta.manifest.metadata)
    }
}

import Foundation

/// Deltas between sharded models (format 1.4, docs/FORMAT.md "Sharded deltas"): a delta root
/// `D.mtlmd` (the root files' delta, and the new model's shard table naming the delta shards)
/// and delta shards `D-0000k-of-0000N.mtlmd`, each the delta of shard k, bound to the base's
/// shard k by its content hash (which covers the shard's rows). Each shard's delta is made and
/// applied on its own, from its two files alone: issue #15 runs them as separate tasks.
///
/// Both models must be split the same way (the same shard count, row ranges and buckets per
/// field): shard k's delta is then the delta of two files holding the same ids' rows.
enum ShardedDelta {
    /// Writes the sharded delta that turns `base` into `new` at `output` (the delta root).
    static func make(base: Model, new: Model, to output: String) throws -> ModelDelta.Summary {
        if let mismatch = layoutMismatch(base, new) {
            throw MTLModelError(.unsupported, "\(mismatch): a delta is made between models split the same way; "
                + "split \(new.path) like the base first (\(splitCommand(new.path, like: base)))",
                file: new.path)
        }
        let pending = try PendingOutput(target: output, delta: true)
        let deltaID = (0..<ShardNaming.modelIDByteCount).map { _ in UInt8.random(in: 0...255) }
        let provenance = ModelDelta.provenance(base, new)
        let shards = try new.shards.indices.map { index in
            try writeShard(index, base: base, new: new, to: pending.shardPath(index + 1, of: new.shards.count), deltaID: deltaID,
                           rootFileName: pending.targetFileName, provenance: provenance)
        }
        return try commitRoot(base: base, new: new, shards: shards, into: pending, deltaID: deltaID, provenance: provenance)
    }

    /// The delta of shard `index` (0-based) at `path`, for a delta root named `rootFileName`:
    /// its record for the root, and what it holds.
    static func writeShard(_ index: Int, base: Model, new: Model, to path: String, deltaID: [UInt8], rootFileName: String,
                           provenance: Provenance) throws -> (file: ShardFile, summary: ModelDelta.Summary) {
        let (old, shard) = (base.shards[index], new.shards[index])
        var summary = ModelDelta.Summary()
        let writer = try ModelWriter(path: path)
        let tensors = try ModelDelta.writeChanges(base: old, new: shard, into: writer, summary: &summary)
        var identity = shard.manifest.shard!
        identity.modelID = deltaID
        identity.rootFileName = rootFileName
        let written = try writer.finish(architecture: new.architecture, provenance: provenance,
                                        delta: DeltaManifest(baseContentHash: ModelDelta.contentHash(old), tensors: tensors,
                                                             newProvenance: shard.manifest.provenance),
                                        shard: identity)
        return (ShardFile(written: written, path: path, parts: identity.parts), summary)
    }

    /// Writes the delta root naming `shards` (every delta shard, in order) into `pending` and
    /// commits it: the summary of the whole delta.
    static func commitRoot(base: Model, new: Model, shards: [(file: ShardFile, summary: ModelDelta.Summary)], into pending: PendingOutput,
                           deltaID: [UInt8], provenance: Provenance) throws -> ModelDelta.Summary {
        var summary = ModelDelta.Summary()
        for shard in shards { summary.add(shard.summary) }
        let writer = try ModelWriter(path: pending.path)
        let tensors = try ModelDelta.writeChanges(base: base.file, new: new.file, into: writer, summary: &summary)
        var table = new.file.manifest.shards!
        table.modelID = deltaID
        table.files = shards.map(\.file)
        try writer.finish(architecture: new.architecture, provenance: provenance, metadata: new.manifest.metadata,
                          delta: DeltaManifest(baseContentHash: ModelDelta.contentHash(base.file), tensors: tensors,
                                               newProvenance: new.manifest.provenance),
                          shards: table)
        try pending.commit()
        summary.deltaByteCount = table.files.reduce(pending.committedRootByteCount ?? 0) { $0 + $1.byteCount }
        summary.newByteCount = new.files.reduce(0) { $0 + $1.fileByteCount }
        return summary
    }

    /// Why `new` is not split as `base` is (shard count, a field's rows or buckets), or nil;
    /// `names` are how the message calls the two.
    static func layoutMismatch(_ base: Model, _ new: Model, names: (String, String) = ("the base", "the new model")) -> String? {
        func describe(_ model: Model) -> String { model.isSharded ? "\(model.shards.count) shards" : "one file" }
        guard base.isSharded, new.isSharded, base.shards.count == new.shards.count else {
            return "\(names.0) is \(describe(base)), \(names.1) \(describe(new))"
        }
        let baseParts = base.file.manifest.shards!.files.map(\.parts), newParts = new.file.manifest.shards!.files.map(\.parts)
        for (index, (old, part)) in zip(baseParts, newParts).enumerated() {
            for (a, b) in zip(old, part) where a.field != b.field || !sameSplit(a, b) {
                return "shard \(index + 1) holds other \(b.isBucketed ? "buckets" : "rows") of field \"\(b.field)\" than \(names.0)'s"
            }
        }
        return nil
    }

    /// Whether two parts hold the same ids: the same buckets of the same hash (a keyed field,
    /// whose row count may change), or the same rows.
    private static func sameSplit(_ a: TablePart, _ b: TablePart) -> Bool {
        guard a.isBucketed || b.isBucketed else { return a.firstRow == b.firstRow && a.rowCount == b.rowCount }
        return a.bucketBits == b.bucketBits && a.hashSeed == b.hashSeed && a.buckets == b.buckets
    }

    /// The `shard` command that splits the model at `path` like `base`.
    static func splitCommand(_ path: String, like base: Model) -> String {
        "mtl-model shard \(path) OUT.mtlm --shards \(max(base.shards.count, 1))\(bucketAdvice(base))"
    }

    /// The `shard` options that reproduce the base's buckets, when one setting does.
    private static func bucketAdvice(_ base: Model) -> String {
        let keyed = base.file.manifest.shards?.files.first?.parts.filter(\.isBucketed) ?? []
        guard let first = keyed.first, keyed.allSatisfy({ $0.bucketBits == first.bucketBits && $0.hashSeed == first.hashSeed }) else { return "" }
        return " --bucket-bits \(first.bucketBits) --hash-seed \(first.hashSeed)"
    }

    /// Rebuilds the new sharded model from `base` and the sharded delta `delta` at `output`:
    /// every file's binding and recipe are checked before anything is written; shard k is
    /// rebuilt from the base's shard k and the delta's; the root last, under a new model id.
    static func apply(base: Model, delta: ModelFile, to output: String) throws {
        let shards = try deltaShards(delta, base: base)
        try ModelDelta.check(base: base.file, delta: delta)
        for (old, shard) in zip(base.shards, shards) { try ModelDelta.check(base: old, delta: shard) }
        let pending = try PendingOutput(target: output)
        let modelID = (0..<ShardNaming.modelIDByteCount).map { _ in UInt8.random(in: 0...255) }
        var files: [ShardFile] = []
        for (index, (old, shard)) in zip(base.shards, shards).enumerated() {
            let path = try pending.shardPath(index + 1, of: shards.count)
            let writer = try ModelWriter(path: path)
            try ModelDelta.rebuild(base: old, delta: shard, into: writer)
            var identity = shard.manifest.shard!
            identity.modelID = modelID
            identity.rootFileName = pending.targetFileName
            let written = try writer.finish(architecture: shard.architecture, provenance: shard.manifest.delta!.newProvenance,
                                            metadata: shard.manifest.metadata, shard: identity)
            files.append(ShardFile(written: written, path: path, parts: identity.parts))
        }
        let writer = try ModelWriter(path: pending.path)
        try ModelDelta.rebuild(base: base.file, delta: delta, into: writer)
        var table = delta.manifest.shards!
        table.modelID = modelID
        table.files = files
        try writer.finish(architecture: delta.architecture, provenance: delta.manifest.delta!.newProvenance, metadata: delta.manifest.metadata,
                          shards: table)
        // The rebuilt files fit together (manifests only): checked before they appear.
        _ = try Model(path: pending.path)
        try pending.commit()
    }

    /// The delta shards of the sharded delta `delta`, checked against its table, for `base`.
    private static func deltaShards(_ delta: ModelFile, base: Model) throws(MTLModelError) -> [ModelFile] {
        guard let table = delta.manifest.shards else {
            throw MTLModelError(.invalidArgument, "is a delta of a one-file model, and the base \(base.path) has \(base.shards.count) shards: "
                + "consolidate the base first (mtl-model shard \(base.path) OUT.mtlm --shards 1), or make the delta between the sharded models",
                file: delta.path)
        }
        guard table.files.count == base.shards.count else {
            let found = base.isSharded ? "has \(base.shards.count) shards" : "is one file"
            throw MTLModelError(.invalidArgument, "was made for a base of \(table.files.count) shards; the base \(base.path) \(found)", file: delta.path)
        }
        let set = ShardSet.open(root: delta, options: delta.options)
        if let problem = set.problems.first {
            throw MTLModelError(.malformed, problem.message, file: problem.file ?? delta.path, location: .init(tensor: problem.tensor))
        }
        return set.files.map { $0! }
    }
}

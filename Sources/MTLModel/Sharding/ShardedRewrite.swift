import Foundation

/// A rewrite of a model file by file, whether it is one file or sharded: each shard into a
/// shard of the same fields' rows, then the root, all through one `PendingOutput` (so a gate
/// can evaluate the result before it appears). What `quantize`, `dequantize` and `convert`
/// write; each file's rewrite is independent of the others' (issue #15 runs them apart).
enum ShardedRewrite {
    /// Writes `model` rewritten into `pending`, `body` writing the tensors of each file (one
    /// file, or each shard and then the root) into its writer.
    ///
    /// - Parameters:
    ///   - architecture: the new model's (every file records it).
    ///   - parts: the parts the new shard k (0-based) holds; nil keeps the input's (a rewrite
    ///     that prunes rows changes them).
    /// - Returns: the whole written model's tensors (a sharded one's table tensors with their
    ///   whole shapes), for size reports.
    static func write(_ model: Model, into pending: PendingOutput, options: ModelWriter.Options, architecture: Architecture,
                      provenance: Provenance, parts: ((Int) -> [TablePart])? = nil,
                      body: (ModelFile, ModelWriter) throws -> Void) throws -> [TensorEntry] {
        guard model.isSharded else {
            let writer = try ModelWriter(path: pending.path, options: options)
            try body(model.file, writer)
            return try writer.finish(architecture: architecture, provenance: provenance, metadata: model.manifest.metadata).tensors
        }
        let modelID = (0..<ShardNaming.modelIDByteCount).map { _ in UInt8.random(in: 0...255) }
        let paths = try (1...model.shards.count).map { try pending.shardPath($0, of: model.shards.count) }
        var files: [ShardFile] = []
        var tensors: [ShardedTensor] = []  // from what the shards hold: their rows added up
        for (index, (shard, path)) in zip(model.shards, paths).enumerated() {
            let writer = try ModelWriter(path: path, options: options)
            try body(shard, writer)
            var identity = shard.manifest.shard!
            identity.modelID = modelID
            identity.rootFileName = pending.targetFileName
            identity.parts = parts?(index) ?? identity.parts
            let written = try writer.finish(architecture: architecture, provenance: provenance, shard: identity)
            if index == 0 {
                tensors = written.tensors.map { ShardedTensor(name: $0.name, dtype: $0.dtype, shape: [0] + $0.shape.dropFirst(), role: $0.role) }
            }
            for (slot, entry) in written.tensors.enumerated() where slot < tensors.count { tensors[slot].shape[0] += entry.shape.first ?? 0 }
            files.append(ShardFile(written: written, path: path, parts: identity.parts))
        }
        let writer = try ModelWriter(path: pending.path, options: options)
        try body(model.file, writer)
        let root = try writer.finish(architecture: architecture, provenance: provenance, metadata: model.manifest.metadata,
                                     shards: ShardTable(modelID: modelID, tensors: tensors, files: files))
        return root.tensors + tensors.map(\.logicalEntry)
    }
}

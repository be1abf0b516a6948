import Foundation

/// A rewrite of a model file by file, whether it is one file or sharded: each shard into a
/// shard holding the same rows, then the root, all through one `PendingOutput` (so a gate can
/// evaluate the result before it appears). What `quantize` and `dequantize` write; each file's
/// rewrite is independent of the others' (issue #15 runs them apart).
enum ShardedRewrite {
    /// Writes `model` rewritten into `pending`, `body` writing the tensors of each file (one
    /// file, or each shard and then the root) into its writer.
    ///
    /// - Returns: the whole written model's tensors (a sharded one's table tensors with their
    ///   whole shapes and new dtypes), for size reports.
    static func write(_ model: Model, into pending: PendingOutput, options: ModelWriter.Options, provenance: Provenance,
                      body: (ModelFile, ModelWriter) throws -> Void) throws -> [TensorEntry] {
        guard let table = model.file.manifest.shards else {
            let writer = try ModelWriter(path: pending.path, options: options)
            try body(model.file, writer)
            return try writer.finish(architecture: model.architecture, provenance: provenance, metadata: model.manifest.metadata).tensors
        }
        let modelID = (0..<ShardNaming.modelIDByteCount).map { _ in UInt8.random(in: 0...255) }
        let paths = try (1...model.shards.count).map { try pending.shardPath($0, of: model.shards.count) }
        var files: [ShardFile] = []
        var dtypes: [String: DType] = [:]
        for (shard, path) in zip(model.shards, paths) {
            let writer = try ModelWriter(path: path, options: options)
            try body(shard, writer)
            var identity = shard.manifest.shard!
            identity.modelID = modelID
            identity.rootFileName = pending.targetFileName
            let written = try writer.finish(architecture: model.architecture, provenance: provenance, shard: identity)
            for entry in written.tensors { dtypes[entry.name] = entry.dtype }
            files.append(ShardFile(fileName: (path as NSString).lastPathComponent, byteCount: written.fileByteCount,
                                   manifestHash: written.manifestHash, parts: identity.parts))
        }
        var tensors = table.tensors
        for index in tensors.indices { tensors[index].dtype = dtypes[tensors[index].name] ?? tensors[index].dtype }
        let writer = try ModelWriter(path: pending.path, options: options)
        try body(model.file, writer)
        let root = try writer.finish(architecture: model.architecture, provenance: provenance, metadata: model.manifest.metadata,
                                     shards: ShardTable(modelID: modelID, tensors: tensors, files: files))
        return root.tensors + tensors.map(\.logicalEntry)
    }
}

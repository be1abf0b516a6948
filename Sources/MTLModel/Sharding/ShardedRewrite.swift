import Foundation

/// A rewrite of a model file by file, whether it is one file or sharded: each shard into a
/// shard of the same fields' rows, then the root. What `quantize`, `dequantize` and `convert`
/// write. Each shard's rewrite reads and writes that shard alone (`writeShard`), so the
/// shards of one rewrite can be written by different processes (the tasks of `plan`,
/// `TaskPlan`) and the root written last from what they wrote (`writeRoot`).
struct ShardedRewrite {
    let model: Model
    let options: ModelWriter.Options
    /// The new model's (every file records it).
    let architecture: Architecture
    /// What every file records; a plan fixes its time, so a task rerun writes the same bytes.
    var provenance: Provenance
    /// The parts the new shard k (0-based) holds; nil keeps the input's (a rewrite that
    /// prunes rows changes them).
    let parts: ((Int) -> [TablePart])?
    /// Writes the tensors of one file (a shard, the root, or the one file) into its writer,
    /// returning the changes of dtype it made.
    let body: (ModelFile, ModelWriter) throws -> [QuantizationReport.TensorChange]

    /// What a whole rewrite wrote.
    struct Outcome {
        /// The written model's tensors (a sharded one's table tensors with their whole shapes).
        var tensors: [TensorEntry]
        /// The change of each changed tensor of the whole model, in the input's tensor order.
        var changes: [QuantizationReport.TensorChange]
    }

    /// A shard written: its record for the root, its tensors, its changes.
    struct WrittenShard {
        var file: ShardFile
        var tensors: [TensorEntry]
        var changes: [QuantizationReport.TensorChange]
    }

    /// Writes the whole rewrite into `pending`: one file, or every shard and then the root.
    func write(into pending: PendingOutput) throws -> Outcome {
        guard model.isSharded else {
            let writer = try ModelWriter(path: pending.path, options: options)
            let changes = try body(model.file, writer)
            let written = try writer.finish(architecture: architecture, provenance: provenance, metadata: model.manifest.metadata)
            return Outcome(tensors: written.tensors, changes: Self.merged([changes], order: model.tensors))
        }
        let modelID = (0..<ShardNaming.modelIDByteCount).map { _ in UInt8.random(in: 0...255) }
        let shards = try model.shards.indices.map { index in
            try writeShard(index, to: pending.shardPath(index + 1, of: model.shards.count), modelID: modelID, rootFileName: pending.targetFileName)
        }
        return try writeRoot(to: pending.path, modelID: modelID, shards: shards)
    }

    /// Shard `index` (0-based) of the output, at `path`, for a root named `rootFileName`.
    func writeShard(_ index: Int, to path: String, modelID: [UInt8], rootFileName: String) throws -> WrittenShard {
        let shard = model.shards[index]
        let writer = try ModelWriter(path: path, options: options)
        let changes = try body(shard, writer)
        var identity = shard.manifest.shard!
        identity.modelID = modelID
        identity.rootFileName = rootFileName
        identity.parts = parts?(index) ?? identity.parts
        let written = try writer.finish(architecture: architecture, provenance: provenance, shard: identity)
        return WrittenShard(file: ShardFile(written: written, path: path, parts: identity.parts), tensors: written.tensors, changes: changes)
    }

    /// The root, naming `shards` (every shard of the output, in order): the whole rewrite's outcome.
    func writeRoot(to path: String, modelID: [UInt8], shards: [WrittenShard]) throws -> Outcome {
        // The table's tensors from what the shards hold: their rows added up.
        var tensors = shards[0].tensors.map { ShardedTensor(name: $0.name, dtype: $0.dtype, shape: [0] + $0.shape.dropFirst(), role: $0.role) }
        for shard in shards {
            for (slot, entry) in shard.tensors.enumerated() where slot < tensors.count { tensors[slot].shape[0] += entry.shape.first ?? 0 }
        }
        let writer = try ModelWriter(path: path, options: options)
        let changes = try body(model.file, writer)
        let root = try writer.finish(architecture: architecture, provenance: provenance, metadata: model.manifest.metadata,
                                     shards: ShardTable(modelID: modelID, tensors: tensors, files: shards.map(\.file)))
        return Outcome(tensors: root.tensors + tensors.map(\.logicalEntry),
                       changes: Self.merged(shards.map(\.changes) + [changes], order: model.tensors))
    }

    /// The change of each tensor from its changes in each file (in file order: shards, then
    /// the root), in the order of `order`.
    private static func merged(_ files: [[QuantizationReport.TensorChange]], order: [TensorEntry]) -> [QuantizationReport.TensorChange] {
        var byName: [String: [QuantizationReport.TensorChange]] = [:]
        for change in files.joined() { byName[change.name, default: []].append(change) }
        return order.compactMap { byName[$0.name].map(QuantizationReport.TensorChange.merged) }
    }
}

/// A rewrite and how its outcome becomes the command's report: what `TaskPlan` runs shard by
/// shard and finishes, and what the single-process command runs whole.
public struct RewriteJob<Report>: @unchecked Sendable {
    var rewrite: ShardedRewrite
    let report: (ShardedRewrite.Outcome) -> Report
    /// The rewrite's steps, each alone, for an accuracy gate to attribute its cost
    /// (`QualityGate.check(_:against:steps:)`).
    public var steps: [StepAttribution.Variant] = []

    /// The whole rewrite into `pending` (which the caller commits, after a gate, or drops).
    public func write(into pending: PendingOutput) throws -> Report {
        report(try rewrite.write(into: pending))
    }
}

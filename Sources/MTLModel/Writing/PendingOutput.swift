import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An output that a command writes completely and then decides to keep or not (an accuracy
/// gate): written under a temporary name beside its target, moved into place by `commit()`,
/// removed otherwise.
///
/// The target is checked as every output is (`OutputTarget`) before anything is written. A
/// target that is written in place (a device, a FIFO) cannot be held back: the writer writes
/// it directly, and `commit()` has nothing left to do.
///
/// A sharded model (format 1.3) is held back the same way: its shards are written under
/// temporary names (`shardPath`) and the root at `path` names them, so the pending model can be
/// opened and evaluated as it is; `commit()` writes the root again with the shards' final
/// names (a root is small), renames the shards, then the root, and removes the shards of
/// earlier writes that no root uses any more.
public final class PendingOutput {
    /// The path as given.
    public let target: String
    /// Where the writer writes: a temporary file beside the target, or the target itself when
    /// it is written in place.
    public let path: String
    private let finalPath: String?
    private let directory: String
    private var committed = false
    /// Temporary shard files handed out by `shardPath`, removed unless committed.
    private var shardPaths: [String] = []
    /// Whether shards written by others were taken in (`adoptShard`).
    private var adoptedShards = false
    /// Whether the root written at commit is fsynced (as `ModelWriter.Options.synchronize`).
    public var synchronize = true
    /// Shard files of earlier writes removed by `commit()` (`ShardCleanup`).
    public private(set) var removedLeftovers: [String] = []
    /// The size of the root `commit()` wrote for a sharded output (it names the shards' final
    /// names, so it is not the size of the pending root).
    public private(set) var committedRootByteCount: UInt64?
    /// How the shards' file names end (`ShardNaming.suffix`): `.mtlm`, or `.mtlmd` for a delta.
    let shardSuffix: String

    public init(target: String, delta: Bool = false) throws(MTLModelError) {
        self.target = target
        shardSuffix = ShardNaming.suffix(delta: delta)
        switch try OutputTarget(resolving: target) {
        case .file(let resolved):
            let slash = resolved.lastIndex(of: "/")
            let directory = slash.map { String(resolved[...$0]) } ?? ""
            let base = slash.map { String(resolved[resolved.index(after: $0)...]) } ?? resolved
            // The temporary-file scheme of `AtomicOutputFile`, so the next write of the same
            // target removes this file if the process dies before deciding; and, as every
            // writer of the target does, this one removes what killed writers left.
            AtomicOutputFile.removeLeftovers(directory: directory, base: base)
            path = AtomicOutputFile.pendingPath(directory: directory, base: base)
            finalPath = resolved
            self.directory = directory
        case .inPlace, .standardOutput:
            path = target
            finalPath = nil
            directory = ""
        }
    }

    deinit {
        if !committed, finalPath != nil {
            unlink(path)
            shardPaths.forEach { unlink($0) }
        }
    }

    /// The file name the output will have (a sharded model's shards record their root's).
    public var targetFileName: String { ((finalPath ?? target) as NSString).lastPathComponent }

    /// Where shard `index` of `count` is written until the commit, beside the target. Refuses a
    /// target that is not a file, and a final shard path that may not be replaced (an input).
    public func shardPath(_ index: Int, of count: Int) throws(MTLModelError) -> String {
        guard let finalPath else {
            throw MTLModelError(.invalidArgument, "a sharded model is several files beside its root: name a file to write, not a device or standard output", file: target)
        }
        let final = ShardNaming.path(root: finalPath, index: index, count: count, suffix: shardSuffix)
        _ = try OutputTarget(resolving: final)
        let base = (final as NSString).lastPathComponent
        AtomicOutputFile.removeLeftovers(directory: directory, base: base)
        // Ends as the names a root lists must, so the pending model opens as it is.
        let path = AtomicOutputFile.pendingPath(directory: directory, base: base, suffix: shardSuffix)
        shardPaths.append(path)
        return path
    }

    /// Takes shard `index` of `count`, written at `path` beside the target by another process
    /// (a task of a plan, `TaskPlan`), into this output: the root written at `path` names it,
    /// `commit()` moves it into place. Unlike `shardPath`'s, it is left where it is when the
    /// output is dropped (the finish may be run again). Refuses as `shardPath` does.
    public func adoptShard(_ path: String, index: Int, of count: Int) throws(MTLModelError) {
        guard let finalPath else {
            throw MTLModelError(.invalidArgument, "a sharded model is several files beside its root: name a file to write, not a device or standard output", file: target)
        }
        _ = try OutputTarget(resolving: ShardNaming.path(root: finalPath, index: index, count: count, suffix: shardSuffix))
        guard (path as NSString).deletingLastPathComponent == (self.path as NSString).deletingLastPathComponent else {
            throw MTLModelError(.invalidArgument, "shard \(index) of \(count) is not beside the target", file: path)
        }
        adoptedShards = true
    }

    /// Moves the written file (or sharded model) into place.
    public func commit() throws {
        committed = true
        guard let finalPath else { return }
        if !shardPaths.isEmpty || adoptedShards { return try commitSharded(finalPath) }
        guard rename(path, finalPath) == 0 else {
            throw MTLModelError(.io, "cannot move the output into place: \(String(cString: strerror(errno)))", file: target)
        }
        ShardCleanup.removeLeftovers(root: finalPath, keeping: [], modelID: nil, suffix: shardSuffix)
    }

    /// The root with its shards' final names is written first, beside the target under this
    /// writer's temporary prefix (so a killed commit leaves nothing the next write keeps), then
    /// the shards are renamed, then the root: the window in which the old root meets new
    /// shards is a few renames (and exists only when the old model had as many shards: other
    /// counts have other names).
    private func commitSharded(_ finalPath: String) throws {
        defer { unlink(path) }
        let pendingRoot = try ModelFile(path: path)
        guard var table = pendingRoot.manifest.shards else {
            throw MTLModelError(.invalidArgument, "shards were written, but the pending root has no shard table", file: target)
        }
        let moves = table.files.indices.map { index in
            (from: ShardNaming.beside(root: path, table.files[index].fileName),
             to: ShardNaming.path(root: finalPath, index: index + 1, count: table.files.count, suffix: shardSuffix))
        }
        for index in table.files.indices { table.files[index].fileName = (moves[index].to as NSString).lastPathComponent }
        let root = path + "-root"
        defer { unlink(root) }
        committedRootByteCount = try writeRoot(pendingRoot, table: table, to: root)
        for (index, move) in moves.enumerated() where rename(move.from, move.to) != 0 {
            throw MTLModelError(.io, "cannot move shard \(index + 1) into place: \(String(cString: strerror(errno)))", file: move.to)
        }
        guard rename(root, finalPath) == 0 else {
            throw MTLModelError(.io, "cannot move the root into place: \(String(cString: strerror(errno)))", file: target)
        }
        removedLeftovers = ShardCleanup.removeLeftovers(root: finalPath, keeping: table.files.map(\.fileName), modelID: table.modelID,
                                                        suffix: shardSuffix)
    }

    /// A copy of the pending root with `table` (a root is small: dense tensors only), a delta's
    /// root with its recipe.
    private func writeRoot(_ pendingRoot: ModelFile, table: ShardTable, to root: String) throws -> UInt64 {
        var options = ModelWriter.Options()
        options.synchronize = synchronize
        if pendingRoot.tensors.contains(where: { $0.compression == .zlib }) { options.compression = .zlib }
        let writer = try ModelWriter(path: root, options: options)
        for entry in pendingRoot.tensors {
            try pendingRoot.withTensorBytes(entry.name) { bytes in
                try writer.writeTensor(entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role, bytes: bytes)
            }
        }
        return try writer.finish(architecture: pendingRoot.architecture, provenance: pendingRoot.manifest.provenance,
                                 metadata: pendingRoot.manifest.metadata, delta: pendingRoot.manifest.delta, shards: table).fileByteCount
    }
}

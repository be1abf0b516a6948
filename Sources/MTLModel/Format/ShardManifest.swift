import Foundation

/// The manifest sections of a sharded model (format 1.3, docs/FORMAT.md "Sharded models"):
/// the root's `ShardTable` and each shard's `ShardIdentity`. Plain values; what they must
/// satisfy together is checked by `ShardSet` when a root is opened.

/// The rows of one field's tables that one shard holds.
public struct TablePart: Sendable, Hashable, Codable {
    public var field: String
    /// Rows `[firstRow, firstRow + rowCount)` of the model's row order.
    public var firstRow: UInt64
    public var rowCount: UInt64
    /// Keyed fields: > 0, and the shard holds the ids whose bucket is in `buckets`.
    public var bucketBits: UInt32
    public var hashSeed: UInt64
    public var firstBucket: UInt32
    public var bucketCount: UInt32

    public init(field: String, rows: Range<UInt64>, bucketBits: UInt32 = 0, hashSeed: UInt64 = 0, buckets: Range<UInt64> = 0..<0) {
        self.field = field
        firstRow = rows.lowerBound
        rowCount = UInt64(rows.count)
        self.bucketBits = bucketBits
        self.hashSeed = hashSeed
        firstBucket = UInt32(buckets.lowerBound)
        bucketCount = UInt32(buckets.count)
    }

    /// The rows, or nil when `firstRow + rowCount` overflows (a hostile manifest).
    public var rows: Range<UInt64>? {
        let (end, overflow) = firstRow.addingReportingOverflow(rowCount)
        return overflow ? nil : firstRow..<end
    }

    public var buckets: Range<UInt64> { UInt64(firstBucket)..<UInt64(firstBucket) + UInt64(bucketCount) }
    public var isBucketed: Bool { bucketBits > 0 }
}

/// A tensor split across the shards by rows: its logical dtype and whole shape.
public struct ShardedTensor: Sendable, Hashable {
    public var name: String
    public var dtype: DType
    public var shape: [UInt64]
    public var role: TensorRole

    /// A directory entry carrying what the structure checks and `inspect` read (name, dtype,
    /// shape, role, size); it locates no bytes: those are the shards' parts.
    var logicalEntry: TensorEntry {
        TensorEntry(name: name, dtype: dtype, shape: shape, role: role, offset: 0,
                    storedByteCount: dtype.storedByteCount(shape: shape) ?? 0, compression: .none,
                    chunkByteCount: 0, chunkCRC32: [], chunkStoredByteCounts: [])
    }
}

extension Manifest {
    /// The whole model's manifest: for a sharded model's root, its own tensors and the shard
    /// table's together, in MODEL.md's order (what `Model`, the structure check and `inspect`
    /// see); any other manifest as it is.
    var wholeModel: Manifest {
        guard let table = shards else { return self }
        let specs = architecture.servingTensors + TrainingStateGroup.allCases.flatMap(architecture.trainingTensors)
        let rank = Dictionary(specs.enumerated().map { ($1.name, $0) }, uniquingKeysWith: { first, _ in first })
        let stored = Set(tensors.map(\.name))
        var whole = self
        whole.tensors = (tensors + table.tensors.filter { !stored.contains($0.name) }.map(\.logicalEntry)).enumerated()
            .sorted { (rank[$0.element.name] ?? Int.max, $0.offset) < (rank[$1.element.name] ?? Int.max, $1.offset) }.map(\.element)
        return whole
    }
}

/// One shard as the root records it.
public struct ShardFile: Sendable, Hashable {
    /// `NAME-0000k-of-0000N.mtlm`, in the root's directory.
    public var fileName: String
    public var byteCount: UInt64
    /// FNV-1a 64 of the shard's manifest bytes as stored: the manifest holds the CRC-32 of
    /// every chunk, so this binds every payload byte (`ShardSet`).
    public var manifestHash: UInt64
    /// One per field, in the architecture's field order.
    public var parts: [TablePart]
}

extension ShardFile {
    /// The record of the shard just written at `path` holding `parts`.
    init(written: ModelWriter.Written, path: String, parts: [TablePart]) {
        self.init(fileName: (path as NSString).lastPathComponent, byteCount: written.fileByteCount,
                  manifestHash: written.manifestHash, parts: parts)
    }

    /// The record of the shard `file` (a shard's manifest names its parts).
    init(_ file: ModelFile) {
        self.init(fileName: (file.path as NSString).lastPathComponent, byteCount: file.fileByteCount,
                  manifestHash: file.manifestHash, parts: file.manifest.shard?.parts ?? [])
    }
}

/// The root's shard table.
public struct ShardTable: Sendable, Hashable {
    /// 16 bytes drawn when the root was written; every shard of this write names it.
    public var modelID: [UInt8]
    public var tensors: [ShardedTensor]
    /// Shard k at index k − 1.
    public var files: [ShardFile]
}

/// What a shard says about itself.
public struct ShardIdentity: Sendable, Hashable {
    public var modelID: [UInt8]
    /// 1-based: k of `NAME-0000k-of-0000N.mtlm`.
    public var index: UInt32
    public var count: UInt32
    public var rootFileName: String
    public var parts: [TablePart]
}

public enum ShardNaming {
    /// How a shard's file name ends: `.mtlm` for a model's shards, `.mtlmd` for a sharded
    /// delta's (format 1.4), so that neither is ever taken for the other's.
    public static func suffix(delta: Bool) -> String { delta ? ".mtlmd" : ".mtlm" }

    /// Bytes of a model id.
    public static let modelIDByteCount = 16

    /// `NAME-0000k-of-0000N.mtlm` for root `NAME.mtlm` (k from 1, at least five digits); with
    /// another `suffix`, the same for `NAME.suffix` (`.safetensors`: the Hugging Face names).
    public static func fileName(root: String, index: Int, count: Int, suffix: String = ".mtlm") -> String {
        let stem = root.hasSuffix(suffix) ? String(root.dropLast(suffix.count)) : root
        return "\(stem)-\(ordinal(index, of: count))\(suffix)"
    }

    /// `0000k-of-0000N`.
    public static func ordinal(_ index: Int, of count: Int) -> String {
        func digits(_ value: Int) -> String {
            let text = String(value)
            return String(repeating: "0", count: max(0, 5 - text.count)) + text
        }
        return "\(digits(index))-of-\(digits(count))"
    }

    /// The path of shard `index` of `count` of the root at `root`: beside it.
    public static func path(root: String, index: Int, count: Int, suffix: String = ".mtlm") -> String {
        beside(root: root, fileName(root: (root as NSString).lastPathComponent, index: index, count: count, suffix: suffix))
    }

    /// The path of file `name` in the directory of the root at `root`.
    public static func beside(root: String, _ name: String) -> String {
        let directory = (root as NSString).deletingLastPathComponent
        return directory.isEmpty ? name : (directory as NSString).appendingPathComponent(name)
    }

    /// The model id as 32 hex digits, for messages.
    public static func hex(_ id: [UInt8]) -> String { MTLModel.hex(id) }
}

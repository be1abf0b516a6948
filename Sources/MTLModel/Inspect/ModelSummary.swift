import Foundation

/// What `inspect` reports about a model: read from the manifest alone unless statistics are
/// asked for.
public struct ModelSummary: Sendable, Codable {
    public struct Section: Sendable, Codable, Hashable {
        public var section: ModelSection
        public var tensorCount: Int
        public var parameterCount: UInt64
        public var byteCount: UInt64
    }

    public struct Tensor: Sendable, Codable, Hashable {
        public var name: String
        public var dtype: DType
        public var shape: [UInt64]
        public var role: TensorRole
        public var section: ModelSection
        public var byteCount: UInt64
        public var storedByteCount: UInt64
        public var offset: UInt64
        public var compression: Compression
        public var chunkCount: Int
        public var statistics: TensorStatistics?
    }

    public var file: String
    public var fileByteCount: UInt64
    public var formatVersion: String
    public var requiredFeatures: [String]
    public var producer: String
    public var producerVersion: String
    public var created: String
    public var source: String
    /// The models this one was derived from, nearest first: what each was made by, its content
    /// hash and creation time (ISO 8601); nil for a file that records none.
    public var lineage: [Lineage]?

    public struct Lineage: Sendable, Codable, Hashable {
        public var contentHash: String
        public var source: String
        public var created: String
    }
    public var metadata: [MetadataEntry]
    public var config: JSONValue
    public var sections: [Section]
    public var parameterCount: UInt64
    public var tensorCount: Int
    public var hasTrainingState: Bool
    /// Present with `includeTensors` (or statistics).
    public var tensors: [Tensor]?
    /// Present for delta files: the base they apply to and where each new tensor comes from.
    public var delta: DeltaSummary?
    /// A sharded model's root: its shards (nil for one file).
    public var shards: [ShardSummary]?

    public struct DeltaSummary: Sendable, Codable {
        public var baseContentHash: String
        public var unchangedTensors: Int
        public var patchedTensors: Int
        public var fullTensors: Int
    }

    /// Summarizes `model`.
    ///
    /// - Parameters:
    ///   - includeTensors: list every tensor.
    ///   - statistics: also compute per-tensor statistics (reads every payload; the only
    ///     option whose cost grows with the weights).
    ///   - checked: the model of `model` when it is one (statistics of a sharded model's
    ///     tables are read from its shards); nil reads `model` alone.
    public init(_ model: ModelFile, includeTensors: Bool, statistics: Bool, checked: Model? = nil) throws {
        // A sharded model's root: the whole model's tensors (the shard table's with the root's),
        // read from the root alone, but for statistics.
        let manifest = model.manifest.wholeModel
        file = model.path
        fileByteCount = model.fileByteCount
        shards = model.manifest.shards?.files.map { ShardSummary(file: $0.fileName, byteCount: $0.byteCount, rows: $0.parts.map(\.rowCount)) }
        formatVersion = model.version.description
        requiredFeatures = model.requiredFeatures.names
        producer = manifest.provenance.producer
        producerVersion = manifest.provenance.producerVersion
        created = Self.iso8601(manifest.provenance.createdUnixSeconds)
        source = manifest.provenance.source
        lineage = manifest.provenance.lineage.isEmpty ? nil : manifest.provenance.lineage.map { Lineage(contentHash: $0.contentHash, source: $0.source, created: Self.iso8601($0.createdUnixSeconds)) }
        metadata = manifest.metadata
        config = manifest.architecture.config
        tensorCount = manifest.tensors.count
        hasTrainingState = manifest.tensors.contains { $0.role.isTrainingState }

        var bySection: [ModelSection: Section] = [:]
        var rows: [Tensor] = []
        for entry in manifest.tensors {
            let section = Self.section(of: entry)
            bySection[section, default: Section(section: section, tensorCount: 0, parameterCount: 0, byteCount: 0)].tensorCount += 1
            bySection[section]!.parameterCount += entry.elementCount
            bySection[section]!.byteCount += entry.storedByteCount
            if includeTensors || statistics {
                var row = Tensor(name: entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role, section: section,
                                 byteCount: entry.byteCount, storedByteCount: entry.storedByteCount, offset: entry.offset,
                                 compression: entry.compression, chunkCount: entry.chunkCount)
                if statistics {
                    row.statistics = try checked.map { try $0.tensor(entry).statistics() } ?? model.statistics(of: entry.name)
                }
                rows.append(row)
            }
        }
        sections = ModelSection.allCases.compactMap { bySection[$0] }
        parameterCount = sections.filter { $0.section != .trainingState }.reduce(0) { $0 + $1.parameterCount }
        tensors = includeTensors || statistics ? rows : nil
        if let recipe = manifest.delta {
            delta = DeltaSummary(baseContentHash: String(format: "%016llx", recipe.baseContentHash),
                                 unchangedTensors: recipe.tensors.filter { $0.source == .base }.count,
                                 patchedTensors: recipe.tensors.filter { $0.source == .rows }.count,
                                 fullTensors: recipe.tensors.filter { $0.source == .full }.count)
        }
    }

    /// The section of a tensor by its name; a delta's patches count in the section of the
    /// tensor they patch, and names MODEL.md does not know in `dense`.
    /// One shard of a sharded model, as its root records it.
    public struct ShardSummary: Sendable, Codable {
        public var file: String
        public var byteCount: UInt64
        /// Rows of each field's tables, in field order.
        public var rows: [UInt64]
    }

    static func section(of entry: TensorEntry) -> ModelSection {
        if entry.role.isTrainingState { return .trainingState }
        return TensorName(DeltaTensorName.patched(entry.name) ?? entry.name)?.section ?? .dense
    }

    static func iso8601(_ seconds: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }
}

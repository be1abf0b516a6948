import Foundation

/// Everything a file says about itself, apart from the payload bytes.
public struct Manifest: Sendable, Hashable {
    public var provenance: Provenance
    public var architecture: Architecture
    public var tensors: [TensorEntry]
    /// Free-form metadata, keys unique, in the order written.
    public var metadata: [MetadataEntry]
    /// Present in delta files only: how to rebuild the new model from its base.
    public var delta: DeltaManifest?
    /// Present in the root of a sharded model only (1.3): the tables split across shard files.
    public var shards: ShardTable?
    /// Present in a shard file only (1.3): the model it belongs to and the rows it holds.
    public var shard: ShardIdentity?

    public init(provenance: Provenance, architecture: Architecture, tensors: [TensorEntry], metadata: [MetadataEntry],
                delta: DeltaManifest? = nil, shards: ShardTable? = nil, shard: ShardIdentity? = nil) {
        self.provenance = provenance
        self.architecture = architecture
        self.tensors = tensors
        self.metadata = metadata
        self.delta = delta
        self.shards = shards
        self.shard = shard
    }
}

/// The recipe of a delta file (format 1.2): one entry per tensor of the new model.
public struct DeltaManifest: Sendable, Hashable {
    public enum Source: UInt32, Sendable, Hashable, Codable {
        /// The base's tensor, unchanged.
        case base = 1
        /// Stored whole in the delta under its own name.
        case full = 2
        /// The base's rows with those listed in `delta.rows.{name}` replaced or added by the
        /// rows of `delta.values.{name}`.
        case rows = 3
    }

    public struct Tensor: Sendable, Hashable {
        public var name: String
        public var dtype: DType
        public var shape: [UInt64]
        public var role: TensorRole
        public var source: Source
    }

    public var baseContentHash: UInt64
    public var tensors: [Tensor]
    public var newProvenance: Provenance
}

public struct MetadataEntry: Sendable, Hashable, Codable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// Who wrote a file, when, and from what.
public struct Provenance: Sendable, Hashable, Codable {
    public var producer: String
    public var producerVersion: String
    public var createdUnixSeconds: Int64
    public var source: String
    /// The models this file was derived from, nearest first (`derived(from:source:)`).
    public var lineage: [LineageStep] = []

    /// One model a file was derived from: its content hash (16 hex digits), its source and
    /// creation time.
    public struct LineageStep: Sendable, Hashable, Codable {
        public var contentHash: String
        public var source: String
        public var createdUnixSeconds: Int64
    }

    /// The longest lineage recorded: older steps are dropped (a file's lineage cannot grow
    /// without bound through a chain of rewrites).
    public static let maxLineageCount = 64

    /// The provenance of a file written now by `source` from `input`: the input's content
    /// hash and provenance first, then the input's own lineage.
    public static func derived(from input: ModelFile, source: String, createdUnixSeconds: Int64? = nil) -> Provenance {
        var provenance = Provenance(createdUnixSeconds: createdUnixSeconds ?? Int64(Date().timeIntervalSince1970), source: source)
        let parent = input.manifest.provenance
        provenance.lineage = Array(([LineageStep(contentHash: hex64(ModelDelta.contentHash(input)), source: parent.source,
                                                 createdUnixSeconds: parent.createdUnixSeconds)] + parent.lineage).prefix(maxLineageCount))
        return provenance
    }

    public init(producer: String = "mtl-model", producerVersion: String = MTLModelVersion.tool,
                createdUnixSeconds: Int64, source: String) {
        self.producer = producer
        self.producerVersion = producerVersion
        self.createdUnixSeconds = createdUnixSeconds
        self.source = source
    }
}

public enum MTLModelVersion {
    /// The version of this library and tool.
    public static let tool = "0.1.0"
}

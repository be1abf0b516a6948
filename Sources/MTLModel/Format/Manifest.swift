/// Everything a file says about itself, apart from the payload bytes.
public struct Manifest: Sendable, Hashable {
    public var provenance: Provenance
    public var architecture: Architecture
    public var tensors: [TensorEntry]
    /// Free-form metadata, keys unique, in the order written.
    public var metadata: [MetadataEntry]

    public init(provenance: Provenance, architecture: Architecture, tensors: [TensorEntry], metadata: [MetadataEntry]) {
        self.provenance = provenance
        self.architecture = architecture
        self.tensors = tensors
        self.metadata = metadata
    }
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

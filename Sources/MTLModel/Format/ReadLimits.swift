/// Limits applied to untrusted files before anything large is allocated.
public struct ReadLimits: Sendable, Hashable, Codable {
    /// Largest manifest accepted, in bytes (a manifest holds no weights: 64 MiB is generous).
    public var maxManifestByteCount: UInt64 = 64 << 20
    /// Most memory protobuf-c may allocate while unpacking the manifest.
    public var maxManifestAllocationByteCount: Int = 512 << 20
    /// Most tensors in one file.
    public var maxTensorCount: Int = 1_000_000
    /// Most dimensions of one tensor.
    public var maxRank: Int = 8
    /// Longest tensor, field, task or metadata key name, in bytes.
    public var maxNameByteCount: Int = 1024
    /// Longest metadata value, in bytes.
    public var maxMetadataValueByteCount: Int = 16 << 20
    /// Most shards of one sharded model (each an open file and mapping while in use).
    public var maxShardCount: Int = 65_536

    public init() {}
}

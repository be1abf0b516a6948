/// One row of the tensor directory: where a tensor's bytes are and how to check them.
public struct TensorEntry: Sendable, Hashable, Codable {
    public var name: String
    public var dtype: DType
    public var shape: [UInt64]
    public var role: TensorRole
    /// Absolute file offset of the stored bytes (a multiple of 64).
    public var offset: UInt64
    /// Bytes in the file, before alignment padding.
    public var storedByteCount: UInt64
    public var compression: Compression
    /// Logical (uncompressed) bytes per chunk; the last chunk may be shorter.
    public var chunkByteCount: UInt64
    /// CRC-32 of each chunk's stored bytes.
    public var chunkCRC32: [UInt32]
    /// Stored size of each chunk (compressed tensors only; empty otherwise).
    public var chunkStoredByteCounts: [UInt64]

    /// Elements in the tensor (validated not to overflow when the file was opened).
    public var elementCount: UInt64 { shape.reduce(1, &*) }
    /// Logical (uncompressed) bytes (validated not to overflow when the file was opened).
    public var byteCount: UInt64 { dtype.storedByteCount(shape: shape)! }
    /// Values per row: the last dimension (1 for a rank-0 tensor).
    public var columnCount: Int { Int(shape.last ?? 1) }

    public var chunkCount: Int { chunkCRC32.count }

    /// Logical byte range of chunk `index`.
    func logicalRange(ofChunk index: Int) -> Range<UInt64> {
        let start = UInt64(index) &* chunkByteCount
        return start..<min(start &+ chunkByteCount, byteCount)
    }

    /// Offsets of each chunk's stored bytes relative to `offset`.
    func storedRanges() -> [Range<UInt64>] {
        var ranges: [Range<UInt64>] = []
        ranges.reserveCapacity(chunkCount)
        var start: UInt64 = 0
        for index in 0..<chunkCount {
            let size = compression == .none ? UInt64(logicalRange(ofChunk: index).count) : chunkStoredByteCounts[index]
            ranges.append(start..<start &+ size)
            start &+= size
        }
        return ranges
    }
}

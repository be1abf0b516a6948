/// One tensor of a checked `Model`: its directory entry and the file that holds it, which it
/// keeps open. Its shape is the one the architecture calls for (checked when the model was
/// built), so row arithmetic on it cannot leave the tensor.
public struct ModelTensor: Sendable {
    public let entry: TensorEntry
    let file: ModelFile

    public var name: String { entry.name }
    public var dtype: DType { entry.dtype }
    public var shape: [UInt64] { entry.shape }
    /// Rows along the first dimension (1 for a rank-0 tensor).
    public var rowCount: Int { Int(entry.shape.first ?? 1) }
    /// Values per row: the last dimension.
    public var columnCount: Int { entry.columnCount }
    /// Stored bytes of one row (quantized rows carry their scale and bias).
    public var rowByteCount: Int { rowCount == 0 ? 0 : Int(entry.byteCount) / rowCount }

    /// Calls `body` with the tensor's logical bytes (zero copy when stored uncompressed);
    /// checksums are verified on first access.
    public func withBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        try file.withTensorBytes(entry.name, body)
    }

    /// Calls `body` with the elements as `T` (zero copy when stored uncompressed).
    public func withElements<T: TensorElement, R>(as type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) throws -> R {
        try file.withElements(of: entry.name, as: type, body)
    }

    /// The values decoded to float32 (float tensors only).
    public func floats() throws -> [Float] { try file.floats(entry.name) }

    /// Drops the pages of `rows` from this process's resident set after a streaming pass (a
    /// hint: the page cache keeps them). Rows outside the tensor are ignored; a compressed
    /// tensor has no mapped rows to release.
    public func releasePages(rows: Range<Int>) {
        guard entry.compression == .none else { return }
        let clipped = rows.clamped(to: 0..<rowCount)
        guard !clipped.isEmpty else { return }
        file.file.release(entry.offset + UInt64(clipped.lowerBound) * UInt64(rowByteCount), UInt64(clipped.count) * UInt64(rowByteCount))
    }

    /// Drops every page of the tensor from this process's resident set.
    public func releasePages() {
        file.file.release(entry.offset, entry.storedByteCount)
    }
}

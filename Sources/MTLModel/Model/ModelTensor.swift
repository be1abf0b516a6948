/// One tensor of a checked `Model`: its directory entry and the file that holds it, which it
/// keeps open. Its shape is the one the architecture calls for (checked when the model was
/// built), so row arithmetic on it cannot leave the tensor.
public struct ModelTensor: Sendable {
    /// Rows `firstRow...` of a sharded tensor, held by one shard file.
    public struct Part: Sendable {
        public let tensor: ModelTensor
        public let firstRow: Int
    }

    public let entry: TensorEntry
    let file: ModelFile
    private let shardParts: [Part]?

    init(entry: TensorEntry, file: ModelFile, parts: [Part]? = nil) {
        self.entry = entry
        self.file = file
        shardParts = parts
    }

    /// The files holding the rows, in row order: the tensor itself unless the model is sharded.
    public var parts: [Part] { shardParts ?? [Part(tensor: self, firstRow: 0)] }
    /// Whether the rows are split across shard files (`withBytes` and the like refuse it).
    public var isSplit: Bool { shardParts != nil }

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
        try requireWhole()
        return try file.withTensorBytes(entry.name, body)
    }

    /// Whole-tensor access to a tensor split across shards would gather it into memory: refused,
    /// so that no command does so by accident; such commands go part by part.
    private func requireWhole() throws(MTLModelError) {
        guard let shardParts else { return }
        throw MTLModelError(.unsupported, "is split across \(shardParts.count) shards and cannot be read whole here", file: file.path, location: .init(tensor: entry.name))
    }

    /// Calls `body` with the elements as `T` (zero copy when stored uncompressed).
    public func withElements<T: TensorElement, R>(as type: T.Type, _ body: (UnsafeBufferPointer<T>) throws -> R) throws -> R {
        try requireWhole()
        return try file.withElements(of: entry.name, as: type, body)
    }

    /// The values decoded to float32 (float tensors only).
    public func floats() throws -> [Float] {
        try requireWhole()
        return try file.floats(entry.name)
    }

    /// Drops the pages of `rows` from this process's resident set after a streaming pass (a
    /// hint: the page cache keeps them). Rows outside the tensor are ignored; a compressed
    /// tensor has no mapped rows to release.
    public func releasePages(rows: Range<Int>) {
        if let shardParts {
            for part in shardParts { part.tensor.releasePages(rows: (rows.lowerBound - part.firstRow)..<(rows.upperBound - part.firstRow)) }
            return
        }
        guard entry.compression == .none else { return }
        let clipped = rows.clamped(to: 0..<rowCount)
        guard !clipped.isEmpty else { return }
        file.file.release(entry.offset + UInt64(clipped.lowerBound) * UInt64(rowByteCount), UInt64(clipped.count) * UInt64(rowByteCount))
    }

    /// Drops every page of the tensor from this process's resident set.
    public func releasePages() {
        if let shardParts { return shardParts.forEach { $0.tensor.releasePages() } }
        file.file.release(entry.offset, entry.storedByteCount)
    }

    /// Checks the tensor (each part: checksums, values, distinct keys) and visits its logical
    /// bytes in order, chunk by chunk, part by part, each with its CRC-32 when the manifest has
    /// it (`ModelFile.visitValidChunks`); `asFloat32` decodes every row to float32 instead (no
    /// CRC). What exporters stream, in bounded memory whether the tensor is split or not.
    func visitValid(asFloat32: Bool, _ body: (_ bytes: UnsafeRawBufferPointer, _ crc: UInt32?) throws -> Void) throws {
        for part in parts {
            let piece = part.tensor
            if asFloat32 {
                try piece.requireValid()
                try piece.file.visitDecodedRows(of: piece.entry) { floats in try body(UnsafeRawBufferPointer(floats), nil) }
            } else {
                try piece.file.visitValidChunks(of: piece.entry, body)
            }
        }
    }

    /// Checks every part once before a command writes anything derived from it: checksums,
    /// values and distinct keys (`ModelFile.requireValid`), on `threadCount` threads (nil: every
    /// core).
    func requireValid(threadCount: Int? = nil) throws {
        for part in parts { try part.tensor.file.requireValid(part.tensor.entry, threadCount: threadCount) }
    }
}

/// Element types a tensor can be viewed as without conversion.
public protocol TensorElement: BitwiseCopyable {
    /// Whether a tensor stored as `dtype` holds elements of this type.
    static func matches(_ dtype: DType) -> Bool
}

extension Float: TensorElement {
    public static func matches(_ dtype: DType) -> Bool { dtype == .float32 }
}

extension Int64: TensorElement {
    public static func matches(_ dtype: DType) -> Bool { dtype == .int64 }
}

extension UInt64: TensorElement {
    /// Keys are stored as int64 (PyTorch has no uint64) and read as unsigned (MODEL.md).
    public static func matches(_ dtype: DType) -> Bool { dtype == .uint64 || dtype == .int64 }
}

extension UInt16: TensorElement {
    /// The raw bits of float16 and bfloat16 elements.
    public static func matches(_ dtype: DType) -> Bool { dtype == .float16 || dtype == .bfloat16 }
}

extension ModelFile {
    /// Calls `body` with tensor `name` as a typed buffer: zero copy for uncompressed tensors,
    /// whose payloads are 64-byte aligned in a page-aligned mapping.
    ///
    /// - Throws: when there is no such tensor, its dtype does not hold `T`, or a checksum
    ///   fails on first access.
    public func withElements<T: TensorElement, R>(of name: String, as type: T.Type,
                                                  _ body: (UnsafeBufferPointer<T>) throws -> R) throws -> R {
        guard let entry = entry(named: name) else {
            throw MTLModelError(.invalidArgument, "no tensor named \"\(name)\"", file: path, location: .init(tensor: name))
        }
        guard T.matches(entry.dtype) else {
            throw MTLModelError(.invalidArgument, "tensor is \(entry.dtype), not viewable as \(T.self)", file: path, location: .init(tensor: name))
        }
        return try withTensorBytes(name) { bytes in
            try body(bytes.assumingMemoryBound(to: T.self))
        }
    }
}

extension ModelFile {
    /// Calls `body` with the values of float tensor `entry` decoded to float32, a window of
    /// whole rows at a time: bounded memory whatever the tensor's size, pages released behind.
    func visitDecodedRows(of entry: TensorEntry, windowRowCount: Int = 16_384, _ body: (UnsafeBufferPointer<Float>) throws -> Void) throws {
        let columns = entry.columnCount
        let rows = columns == 0 ? 0 : Int(entry.elementCount) / columns
        let rowBytes = Int(entry.dtype.rowByteCount(columns: UInt64(columns)))
        var values = [Float](repeating: 0, count: min(rows, windowRowCount) * columns)
        try withTensorBytes(entry.name) { stored in
            var start = 0
            while start < rows {
                let count = min(windowRowCount, rows - start)
                try values.withUnsafeMutableBufferPointer { floats in
                    for r in 0..<count {
                        RowCodec.decodeRow(stored.baseAddress! + (start + r) * rowBytes, dtype: entry.dtype, columns: columns,
                                           into: floats.baseAddress! + r * columns)
                    }
                    try body(UnsafeBufferPointer(rebasing: floats[..<(count * columns)]))
                }
                if entry.compression == .none { file.release(entry.offset + UInt64(start * rowBytes), UInt64(count * rowBytes)) }
                Progress.advance(count * rowBytes)
                start += count
            }
        }
    }
}

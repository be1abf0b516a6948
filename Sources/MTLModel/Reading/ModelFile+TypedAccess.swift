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

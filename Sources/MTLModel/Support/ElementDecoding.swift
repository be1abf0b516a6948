/// Widening of stored elements to Float, switching on the dtype once per row.
enum ElementDecoding {
    /// The values of `bytes`, whole rows of `columns` values stored as `dtype`.
    static func floats(_ bytes: UnsafeRawBufferPointer, dtype: DType, columns: Int) -> [Float] {
        let rowBytes = Int(dtype.rowByteCount(columns: UInt64(columns)))
        let rows = rowBytes == 0 ? 0 : bytes.count / rowBytes
        return Array(unsafeUninitializedCapacity: rows * columns) { output, initialized in
            guard let base = bytes.baseAddress, let out = output.baseAddress else { return initialized = 0 }
            for r in 0..<rows {
                RowCodec.decodeRow(base + r * rowBytes, dtype: dtype, columns: columns, into: out + r * columns)
            }
            initialized = rows * columns
        }
    }
}

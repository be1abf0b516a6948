/// Widening of stored elements to Float / Double, switching on the dtype once per buffer.
enum ElementDecoding {
    static func floats(_ bytes: UnsafeRawBufferPointer, dtype: DType) -> [Float] {
        let count = bytes.count / dtype.byteCount
        return Array(unsafeUninitializedCapacity: count) { output, initialized in
            switch dtype {
            case .float32:
                for i in 0..<count { output[i] = bytes.loadUnaligned(fromByteOffset: i * 4, as: Float.self) }
            case .float16:
                for i in 0..<count { output[i] = float(fromHalf: bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) }
            case .bfloat16:
                for i in 0..<count { output[i] = Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16) }
            case .int64:
                for i in 0..<count { output[i] = Float(bytes.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)) }
            case .uint64:
                for i in 0..<count { output[i] = Float(bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) }
            }
            initialized = count
        }
    }

    /// IEEE 754 binary16 → binary32, exact (done by hand: Float16 is not on every platform).
    static func float(fromHalf bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits) & 0x3FF
        if exponent == 0 {
            // Zero or subnormal: mantissa · 2^-24.
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign == 0 ? magnitude : -magnitude
        }
        if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}

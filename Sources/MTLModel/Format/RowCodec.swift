/// Encoding and decoding of one row of the row-wise quantized dtypes and of float16 /
/// bfloat16, shared by the quantizer, the readers and the forward pass.
enum RowCodec {
    // MARK: float16 and bfloat16

    /// float32 → float16 bits, round to nearest even: the same bits as `Float16(x)`, without
    /// its library call (Swift targets baseline x86-64, which has no F16C instruction, and
    /// the call made int4 quantization and float16 tables several times slower). Fabian
    /// Giesen's branch-light conversion ("float_to_half_fast3_rtne"); a test compares it with
    /// `Float16` on every class of input.
    @inline(__always)
    static func half(_ x: Float) -> UInt16 {
        var bits = x.bitPattern
        let sign = bits & 0x8000_0000
        bits ^= sign
        let result: UInt32
        if bits >= 0x4780_0000 {  // 65536 and above, Inf, NaN
            result = bits > 0x7F80_0000 ? 0x7E00 | ((bits >> 13) & 0x3FF) : 0x7C00
        } else if bits < 0x3880_0000 {  // below float16's smallest normal: subnormal or zero
            let magic = Float(bitPattern: 0x3F00_0000)  // 0.5: aligns the mantissa so the add rounds
            result = (Float(bitPattern: bits) + magic).bitPattern &- magic.bitPattern
        } else {
            let odd = (bits >> 13) & 1
            result = (bits &+ 0xC800_0FFF &+ odd) >> 13  // rebias the exponent (−112 << 23), round to even
        }
        return UInt16(truncatingIfNeeded: result | (sign >> 16))
    }

    /// float16 bits → float32, exactly: the bits of `Float(Float16(bitPattern:))` for all 65536
    /// inputs (a test checks every one), NaNs quieted as it quiets them, without its library
    /// call (`__extendhfsf2`: a quarter of `quantize --embeddings fp16`'s samples, and in every
    /// float16 row a forward pass or a diff decodes). Branch-free, so loops over rows vectorize.
    @inline(__always)
    static func float(fromHalf bits: UInt16) -> Float {
        let magnitude = UInt32(bits & 0x7FFF), sign = UInt32(bits & 0x8000) << 16
        let normal = (magnitude << 13) &+ 0x3800_0000  // rebias the exponent (+112 << 23)
        let subnormal = (Float(magnitude) * 0x1p-24).bitPattern  // zero too: exact, 10 bits
        let special = (magnitude << 13) | 0x7F80_0000 | (magnitude > 0x7C00 ? 0x0040_0000 : 0)  // Inf; NaN quieted
        let result = magnitude < 0x400 ? subnormal : magnitude >= 0x7C00 ? special : normal
        return Float(bitPattern: result | sign)
    }

    /// float32 → bfloat16 bits, round to nearest even (inputs are finite).
    @inline(__always)
    static func bfloat(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    @inline(__always)
    static func float(fromBFloat bits: UInt16) -> Float { Float(bitPattern: UInt32(bits) << 16) }

    // MARK: decoding

    /// Writes the `columns` values of the row at `row` (stored as `dtype`) to `output`.
    @inline(__always)
    static func decodeRow(_ row: UnsafeRawPointer, dtype: DType, columns: Int, into output: UnsafeMutablePointer<Float>) {
        switch dtype {
        case .float32:
            for j in 0..<columns { output[j] = row.loadUnaligned(fromByteOffset: j * 4, as: Float.self) }
        case .float16:
            for j in 0..<columns { output[j] = float(fromHalf: row.loadUnaligned(fromByteOffset: j * 2, as: UInt16.self)) }
        case .bfloat16:
            for j in 0..<columns { output[j] = float(fromBFloat: row.loadUnaligned(fromByteOffset: j * 2, as: UInt16.self)) }
        case .int64:
            for j in 0..<columns { output[j] = Float(row.loadUnaligned(fromByteOffset: j * 8, as: Int64.self)) }
        case .uint64:
            for j in 0..<columns { output[j] = Float(row.loadUnaligned(fromByteOffset: j * 8, as: UInt64.self)) }
        case .int8Rowwise:
            let (scale, bias) = int8Parameters(row, columns: columns)
            let q = row.assumingMemoryBound(to: UInt8.self)
            for j in 0..<columns { output[j] = scale * Float(q[j]) + bias }
        case .int4Rowwise:
            let (scale, bias) = int4Parameters(row, columns: columns)
            let q = row.assumingMemoryBound(to: UInt8.self)
            for j in 0..<columns {
                let nibble = (q[j >> 1] >> UInt8((j & 1) * 4)) & 0x0F
                output[j] = scale * Float(nibble) + bias
            }
        case .int8Symmetric:
            let scale = row.loadUnaligned(fromByteOffset: columns, as: Float.self)
            let q = row.assumingMemoryBound(to: Int8.self)
            for j in 0..<columns { output[j] = scale * Float(q[j]) }
        }
    }

    @inline(__always)
    static func int8Parameters(_ row: UnsafeRawPointer, columns: Int) -> (scale: Float, bias: Float) {
        (row.loadUnaligned(fromByteOffset: columns, as: Float.self), row.loadUnaligned(fromByteOffset: columns + 4, as: Float.self))
    }

    @inline(__always)
    static func int4Parameters(_ row: UnsafeRawPointer, columns: Int) -> (scale: Float, bias: Float) {
        let offset = (columns + 1) / 2
        return (float(fromHalf: row.loadUnaligned(fromByteOffset: offset, as: UInt16.self)),
                float(fromHalf: row.loadUnaligned(fromByteOffset: offset + 2, as: UInt16.self)))
    }

    /// The scale and bias of a quantized row (bias 0 for symmetric rows), to check they are finite.
    static func parameters(_ row: UnsafeRawPointer, dtype: DType, columns: Int) -> (scale: Float, bias: Float) {
        switch dtype {
        case .int8Rowwise: int8Parameters(row, columns: columns)
        case .int4Rowwise: int4Parameters(row, columns: columns)
        case .int8Symmetric: (row.loadUnaligned(fromByteOffset: columns, as: Float.self), 0)
        default: (1, 0)
        }
    }
}

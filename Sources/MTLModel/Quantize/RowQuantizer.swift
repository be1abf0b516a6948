import CKernels
/// Encodes rows of float32 values as the quantized and half-precision dtypes: the scheme of
/// FBGEMM / TorchRec for embedding tables (asymmetric per row), symmetric per output channel
/// for dense weights. Inputs are finite (the quantizer checks before calling).
enum RowQuantizer {
    /// float16's smallest normal number: int4 scales are never smaller (docs/FORMAT.md).
    static let smallestNormalHalf = Float(sign: .plus, exponent: -14, significand: 1)
    static let largestHalf: Float = 65504

    /// float32 bits of magnitude from which a value rounds to bfloat16's Inf (3.3895e38 and up).
    static let bfloatOverflowBits: UInt32 = 0x7F7F_8000

    enum Failure: Error {
        /// A value beyond float16's range in a type whose values or parameters are float16, or
        /// one that would round to Inf in bfloat16.
        case beyondRange
    }

    /// Encodes `columns` values at `x` as one row of `dtype` at `out`.
    static func encode(_ x: UnsafePointer<Float>, columns: Int, as dtype: DType, into out: UnsafeMutableRawPointer) throws(Failure) {
        switch dtype {
        case .float32:
            out.copyMemory(from: x, byteCount: columns * 4)
        case .float16:
            for j in 0..<columns {
                guard abs(x[j]) <= largestHalf else { throw .beyondRange }
                out.storeBytes(of: RowCodec.half(x[j]), toByteOffset: j * 2, as: UInt16.self)
            }
        case .bfloat16:
            for j in 0..<columns {
                guard x[j].bitPattern & 0x7FFF_FFFF < bfloatOverflowBits else { throw .beyondRange }
                out.storeBytes(of: RowCodec.bfloat(x[j]), toByteOffset: j * 2, as: UInt16.self)
            }
        case .int8Rowwise:
            encodeInt8(x, columns: columns, into: out)
        case .int4Rowwise:
            try encodeInt4(x, columns: columns, into: out)
        case .int8Symmetric:
            encodeSymmetric(x, columns: columns, into: out)
        case .int64, .uint64:
            preconditionFailure("not a float type")
        }
    }

    /// ‖decoded − x‖ / ‖x‖ of a row stored as `dtype` (0 for a zero row stored exactly), in
    /// double with the sums in element order: what `quantize` reports per tensor. The int4
    /// kernel computes the same figures for its rows (`mtlm_encode_int4_rows`).
    static func relativeError(of x: UnsafePointer<Float>, columns: Int, storedAs row: UnsafeRawPointer, _ dtype: DType,
                              scratch: UnsafeMutablePointer<Float>) -> Double {
        RowCodec.decodeRow(row, dtype: dtype, columns: columns, into: scratch)
        var difference = 0.0, norm = 0.0
        for j in 0..<columns {
            let d = Double(scratch[j]) - Double(x[j])
            difference += d * d
            norm += Double(x[j]) * Double(x[j])
        }
        return norm == 0 ? (difference == 0 ? 0 : .infinity) : (difference / norm).squareRoot()
    }

    @inline(__always)
    static func range(_ x: UnsafePointer<Float>, _ columns: Int) -> (Float, Float) {
        var low = x[0], high = x[0]
        for j in 1..<columns {
            low = min(low, x[j])
            high = max(high, x[j])
        }
        return (low, high)
    }

    /// Asymmetric 8-bit: bias = min, scale = (max − min) / 255; every value within scale / 2.
    /// A row of equal values has scale 0 and decodes exactly to its bias.
    static func encodeInt8(_ x: UnsafePointer<Float>, columns: Int, into out: UnsafeMutableRawPointer) {
        let (low, high) = range(x, columns)
        // In double: max − min of float32 values cannot overflow, nor can its reciprocal.
        let scale = (Double(high) - Double(low)) / 255
        let storedScale = Float(scale)
        let q = out.assumingMemoryBound(to: UInt8.self)
        if storedScale == 0 || !storedScale.isNormal {
            // Equal values, or a spread too small for a normal float scale: store the exact
            // minimum (when the spread is subnormal its error is below float's resolution).
            for j in 0..<columns { q[j] = 0 }
            out.storeBytes(of: Float(0), toByteOffset: columns, as: Float.self)
            out.storeBytes(of: low, toByteOffset: columns + 4, as: Float.self)
            return
        }
        let inverse = Float(1 / scale)
        for j in 0..<columns {
            // Rounds half up, exactly as the C kernel of the float32 path does.
            let level = Float(Int32((x[j] - low) * inverse + 0.5))
            q[j] = UInt8(min(level, 255))
        }
        out.storeBytes(of: storedScale, toByteOffset: columns, as: Float.self)
        out.storeBytes(of: low, toByteOffset: columns + 4, as: Float.self)
    }

    /// Symmetric 8-bit: scale = max |x| / 127, q ∈ [−127, 127]; a zero row stays zero.
    static func encodeSymmetric(_ x: UnsafePointer<Float>, columns: Int, into out: UnsafeMutableRawPointer) {
        var peak: Float = 0
        for j in 0..<columns { peak = max(peak, abs(x[j])) }
        let scale = peak / 127
        let q = out.assumingMemoryBound(to: Int8.self)
        if scale == 0 || !scale.isNormal {
            for j in 0..<columns { q[j] = 0 }
            out.storeBytes(of: Float(0), toByteOffset: columns, as: Float.self)
            return
        }
        let inverse = 1 / scale
        for j in 0..<columns { q[j] = Int8(min(max((x[j] * inverse).rounded(.toNearestOrEven), -127), 127)) }
        out.storeBytes(of: scale, toByteOffset: columns, as: Float.self)
    }

    /// 4-bit with float16 scale and bias, over a clipping range chosen by a greedy search
    /// (FBGEMM's): starting from [min, max], repeatedly move whichever end lowers the squared
    /// reconstruction error more, keeping the best range seen — never worse than min/max.
    /// The search evaluates the error ~64 times a row: it runs in C (`mtlm_encode_int4_rows`,
    /// AVX-512 where the CPU has it), held by the tests to the same bytes as its Swift twin.
    static func encodeInt4(_ x: UnsafePointer<Float>, columns: Int, into out: UnsafeMutableRawPointer, search: Bool = true) throws(Failure) {
        guard mtlm_encode_int4_rows(x, 1, columns, out.assumingMemoryBound(to: UInt8.self), 0, search ? 1 : 0, Int32(MTLM_INT4_BEST), nil) < 0 else {
            throw .beyondRange
        }
    }
}

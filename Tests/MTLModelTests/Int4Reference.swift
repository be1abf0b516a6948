@testable import MTLModel

/// The Swift implementation of int4 encoding that `mtlm_encode_int4_row` replaced, kept
/// as the twin the C kernel (each of its paths) must match byte for byte: verbatim but for the
/// end of the search on a step that moves nothing.
enum Int4Reference {
    static let smallestNormalHalf = RowQuantizer.smallestNormalHalf
    static let largestHalf = RowQuantizer.largestHalf
    typealias Failure = RowQuantizer.Failure

    static func range(_ x: UnsafePointer<Float>, _ columns: Int) -> (Float, Float) { RowQuantizer.range(x, columns) }

    /// 4-bit with float16 scale and bias, over a clipping range chosen by a greedy search
    /// (FBGEMM's): starting from [min, max], repeatedly move whichever end lowers the squared
    /// reconstruction error more, keeping the best range seen — never worse than min/max.
    static func encode(_ x: UnsafePointer<Float>, columns: Int, into out: UnsafeMutableRawPointer, search: Bool = true) throws(Failure) {
        let (low, high) = range(x, columns)
        guard abs(low) <= largestHalf, abs(high) <= largestHalf else { throw .beyondRange }
        var best = (low: low, high: high, loss: int4Loss(x, columns, low, high))
        if search && high > low {
            let bins: Float = 200
            let step = (high - low) / bins
            var current = (low: low, high: high)
            let minimumWidth = (high - low) * (1 - 0.16)
            while current.high - current.low > minimumWidth {
                let raiseLow = int4Loss(x, columns, current.low + step, current.high)
                let lowerHigh = int4Loss(x, columns, current.low, current.high - step)
                // (Added with #17: a step that does not move the end — a spread of a few
                // ulps — ends the search, which would otherwise repeat forever.)
                if raiseLow < lowerHigh {
                    guard current.low + step != current.low else { break }
                    current.low += step
                    if raiseLow < best.loss { best = (current.low, current.high, raiseLow) }
                } else {
                    guard current.high - step != current.high else { break }
                    current.high -= step
                    if lowerHigh < best.loss { best = (current.low, current.high, lowerHigh) }
                }
            }
        }
        let (scale, bias) = int4Parameters(best.low, best.high)
        let offset = (columns + 1) / 2
        let q = out.assumingMemoryBound(to: UInt8.self)
        for i in 0..<offset { q[i] = 0 }
        for j in 0..<columns {
            let level = scale == 0 ? 0 : UInt8(int4Level((x[j] - bias) / scale))
            q[j >> 1] |= level << UInt8((j & 1) * 4)
        }
        out.storeBytes(of: RowCodec.half(scale), toByteOffset: offset, as: UInt16.self)
        out.storeBytes(of: RowCodec.half(bias), toByteOffset: offset + 2, as: UInt16.self)
    }

    /// The float16-representable scale and bias for range [low, high]: a scale that would be
    /// subnormal in float16 is raised to its smallest normal (2^-14), so tiny spreads keep an
    /// absolute error ≤ 2^-15 instead of losing their precision to subnormals.
    @inline(__always)
    static func int4Parameters(_ low: Float, _ high: Float) -> (scale: Float, bias: Float) {
        let bias = RowCodec.float(fromHalf: RowCodec.half(low))
        guard high > low else { return (0, bias) }
        let scale = RowCodec.float(fromHalf: RowCodec.half(max((high - low) / 15, smallestNormalHalf)))
        return (scale, bias)
    }

    /// The 4-bit level of `v` (in units of the scale above the bias): clamped to [0, 15], then
    /// rounded to nearest even by adding and removing 2^23 (what `rounded(.toNearestOrEven)`
    /// gives, without the library call baseline x86-64 needs for it; clamping first gives the
    /// same level as rounding first).
    @inline(__always)
    static func int4Level(_ v: Float) -> Float {
        let magic: Float = 8_388_608
        return (min(max(v, 0), 15) + magic) - magic
    }

    /// Squared reconstruction error of the row with range [low, high], as it would be stored
    /// (`mtlm_int4_loss`: vectorized, the same value on every CPU).
    static func int4Loss(_ x: UnsafePointer<Float>, _ columns: Int, _ low: Float, _ high: Float) -> Float {
        let (scale, bias) = int4Parameters(low, high)
        guard scale != 0 else {
            var loss: Float = 0
            for j in 0..<columns { loss += (bias - x[j]) * (bias - x[j]) }
            return loss
        }
        // What the C loop (mtlm_int4_loss) computed: 8 lanes, element j into lane j mod 8, the
        // lanes combined in a fixed order (Swift contracts nothing into FMA).
        var lane = [Float](repeating: 0, count: 8)
        for j in 0..<columns {
            let v = (min(max((x[j] - bias) / scale, 0), 15) + 8_388_608) - 8_388_608
            lane[j & 7] += ((scale * v) + bias - x[j]) * ((scale * v) + bias - x[j])
        }
        return ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]))
    }
}

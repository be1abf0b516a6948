/// Summary statistics of one tensor's elements, computed in one pass in double precision.
public struct TensorStatistics: Sendable, Hashable, Codable {
    public var elementCount: UInt64 = 0
    public var min: Double?
    public var max: Double?
    public var mean: Double?
    public var std: Double?
    public var zeroFraction: Double?
    public var nanCount: UInt64 = 0
    public var infCount: UInt64 = 0

    /// Statistics of `bytes` holding elements of `dtype`; NaN and Inf are counted, not summed.
    ///
    /// - Complexity: O(n), one pass, switching on the dtype once.
    public init(_ bytes: UnsafeRawBufferPointer, dtype: DType) {
        var accumulator = Accumulator()
        let count = bytes.count / dtype.byteCount
        switch dtype {
        case .float32:
            for i in 0..<count { accumulator.add(Double(bytes.loadUnaligned(fromByteOffset: i * 4, as: Float.self))) }
        case .float16:
            for i in 0..<count { accumulator.add(Double(ElementDecoding.float(fromHalf: bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))) }
        case .bfloat16:
            for i in 0..<count { accumulator.add(Double(Float(bitPattern: UInt32(bytes.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16))) }
        case .int64:
            for i in 0..<count { accumulator.add(Double(bytes.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))) }
        case .uint64:
            for i in 0..<count { accumulator.add(Double(bytes.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))) }
        }
        self = accumulator.statistics
    }

    init() {}

    /// Welford's running mean and variance (stable for millions of rows).
    private struct Accumulator {
        var count: UInt64 = 0
        var finite: UInt64 = 0
        var zeros: UInt64 = 0
        var nan: UInt64 = 0
        var inf: UInt64 = 0
        var low = Double.infinity
        var high = -Double.infinity
        var mean = 0.0
        var m2 = 0.0

        mutating func add(_ x: Double) {
            count += 1
            if x.isNaN { nan += 1; return }
            if x.isInfinite { inf += 1; return }
            finite += 1
            if x == 0 { zeros += 1 }
            low = Swift.min(low, x)
            high = Swift.max(high, x)
            let delta = x - mean
            mean += delta / Double(finite)
            m2 += delta * (x - mean)
        }

        var statistics: TensorStatistics {
            var result = TensorStatistics()
            result.elementCount = count
            result.nanCount = nan
            result.infCount = inf
            if count > 0 { result.zeroFraction = Double(zeros) / Double(count) }
            if finite > 0 {
                result.min = low
                result.max = high
                result.mean = mean
                result.std = (m2 / Double(finite)).squareRoot()
            }
            return result
        }
    }
}

/// Quantiles of a stream of non-negative values in bounded memory: exact (the values kept) up
/// to `exactLimit` values, then a histogram over the values' float32 bit patterns, whose order
/// is the values' order: 2^20 buckets of 2^-12 relative width, each with its count and the
/// smallest value it saw. A quantile read from the histogram is a value of the stream at most
/// 2^-12 (0.025%) below the exact one. 12 MiB at most, whatever the count.
struct QuantileSketch {
    private static let droppedBits = 11
    private static let bucketCount = 1 << (31 - droppedBits)

    let exactLimit: Int
    private var exact: [Float] = []
    private var counts: [UInt64] = []
    private var minima: [Float] = []
    private(set) var count = 0
    private(set) var maximum: Float = 0

    init(exactLimit: Int = 1 << 20) {
        self.exactLimit = exactLimit
    }

    mutating func add(_ value: Float) {
        count += 1
        maximum = count == 1 ? value : max(maximum, value)
        if counts.isEmpty {
            exact.append(value)
            if exact.count > exactLimit {
                counts = Array(repeating: 0, count: Self.bucketCount)
                minima = Array(repeating: .infinity, count: Self.bucketCount)
                for kept in exact { addToHistogram(kept) }
                exact = []
            }
        } else {
            addToHistogram(value)
        }
    }

    private mutating func addToHistogram(_ value: Float) {
        let bucket = Int((value.bitPattern & 0x7FFF_FFFF) >> UInt32(Self.droppedBits))
        counts[bucket] += 1
        if value < minima[bucket] || minima[bucket].isNaN { minima[bucket] = value }
    }

    /// The value of rank `rank` (0-based) in ascending order.
    func value(atRank rank: Int) -> Float {
        precondition(rank < count)
        if counts.isEmpty {
            var scratch = exact
            return ModelDiff.select(&scratch, rank: rank)
        }
        var seen: UInt64 = 0
        for bucket in counts.indices {
            seen += counts[bucket]
            if seen > UInt64(rank) { return minima[bucket] }
        }
        return maximum
    }
}

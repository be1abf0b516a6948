/// Quantiles of a stream of non-negative values in bounded memory: exact (the values kept) up
/// to `exactLimit` values, then a histogram over the values' float32 bit patterns, whose order
/// is the values' order: 2^20 buckets of 2^-12 relative width, each with its count and the
/// smallest value it saw. A quantile read from the histogram is a value of the stream at most
/// 2^-12 (0.025%) below the exact one. 12 MiB at most, whatever the count.
///
/// Sketches of parts of a stream merge (`merge`) into the sketch of the whole stream, value
/// for value: the exact values are a multiset and the histogram's counts and minima do not
/// depend on the order the values came in. So the tasks of a planned `diff` (one per shard)
/// give the quantiles the single process gives.
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

    /// Adds every value `other` saw.
    mutating func merge(_ other: QuantileSketch) {
        guard !other.counts.isEmpty else { return other.exact.forEach { add($0) } }
        if counts.isEmpty {
            counts = Array(repeating: 0, count: Self.bucketCount)
            minima = Array(repeating: .infinity, count: Self.bucketCount)
            for kept in exact { addToHistogram(kept) }
            exact = []
        }
        for bucket in counts.indices where other.counts[bucket] > 0 {
            counts[bucket] += other.counts[bucket]
            if other.minima[bucket] < minima[bucket] { minima[bucket] = other.minima[bucket] }
        }
        maximum = count == 0 ? other.maximum : max(maximum, other.maximum)
        count += other.count
    }

    /// How many values are 0 (or subnormal, in the histogram: below 2^-126).
    var zeroCount: Int {
        counts.isEmpty ? exact.reduce(0) { $0 + ($1 == 0 ? 1 : 0) } : Int(counts[0])
    }

    /// How many values fall below each of `edges` (ascending) and at or above the one before:
    /// `edges.count + 1` counts, the last of values at or above the last edge. From the
    /// histogram, a bucket counts where its smallest value falls (2^-12 relative).
    func counts(below edges: [Float]) -> [Int] {
        var result = [Int](repeating: 0, count: edges.count + 1)
        func bin(_ value: Float) -> Int { edges.firstIndex { value < $0 } ?? edges.count }
        if counts.isEmpty {
            for value in exact { result[bin(value)] += 1 }
        } else {
            for bucket in counts.indices where counts[bucket] > 0 { result[bin(minima[bucket])] += Int(counts[bucket]) }
        }
        return result
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

/// Coded losslessly (values as their bit patterns; of the histogram, only the buckets that
/// hold a value), for a task's result file.
extension QuantileSketch: Codable {
    private enum CodingKeys: String, CodingKey { case exactLimit, count, maximum, exact, buckets }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(exactLimit, forKey: .exactLimit)
        try container.encode(count, forKey: .count)
        try container.encode(maximum.bitPattern, forKey: .maximum)
        if counts.isEmpty {
            try container.encode(ByteCoding.base64(exact.map(\.bitPattern)), forKey: .exact)
        } else {
            // (bucket, count, minimum's bits) of each bucket that holds a value.
            var words: [UInt64] = []
            for bucket in counts.indices where counts[bucket] > 0 {
                words += [UInt64(bucket) << 32 | UInt64(minima[bucket].bitPattern), counts[bucket]]
            }
            try container.encode(ByteCoding.base64(words), forKey: .buckets)
        }
    }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(exactLimit: try container.decode(Int.self, forKey: .exactLimit))
        count = try container.decode(Int.self, forKey: .count)
        maximum = Float(bitPattern: try container.decode(UInt32.self, forKey: .maximum))
        if let text = try container.decodeIfPresent(String.self, forKey: .buckets) {
            let words: [UInt64] = try ByteCoding.words(base64: text, codingPath: container.codingPath)
            counts = Array(repeating: 0, count: Self.bucketCount)
            minima = Array(repeating: .infinity, count: Self.bucketCount)
            for pair in stride(from: 0, to: words.count - 1, by: 2) {
                let bucket = Int(words[pair] >> 32)
                guard bucket < Self.bucketCount else {
                    throw DecodingError.dataCorrupted(.init(codingPath: container.codingPath, debugDescription: "bucket \(bucket) out of range"))
                }
                minima[bucket] = Float(bitPattern: UInt32(truncatingIfNeeded: words[pair]))
                counts[bucket] = words[pair + 1]
            }
        } else {
            let bits: [UInt32] = try ByteCoding.words(base64: try container.decode(String.self, forKey: .exact), codingPath: container.codingPath)
            exact = bits.map(Float.init(bitPattern:))
        }
    }
}

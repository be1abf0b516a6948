/// How a sharded model splits its embedding tables (docs/SHARDING.md): `direct` and `modulo`
/// tables by contiguous row ranges, as row-wise sharding does; `keyed` tables by a hash of the
/// feature id into a fixed number of buckets, each shard owning a contiguous range of whole
/// buckets, so that resharding N → M moves whole buckets and never rehashes an id.
///
/// Pure functions of documented arithmetic: the Python package implements the same, and both
/// are checked against `fixtures/sharding/vectors.json`.
public enum ShardLayout {
    /// Buckets per keyed table unless the model says otherwise: enough for 65,536 shards.
    public static let defaultBucketBits = 16
    /// Largest bucket count (2^24): a shard's bucket ranges stay a small table.
    public static let maxBucketBits = 24

    /// The 64-bit hash of feature id `id` under `seed`: SplitMix64's finalizer (Steele, Lea,
    /// Flood 2014) of `id + seed + 0x9E3779B97F4A7C15`, all arithmetic modulo 2^64.
    public static func hash(_ id: UInt64, seed: UInt64) -> UInt64 {
        var z = id &+ seed &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The bucket of `id`: the top `bucketBits` bits of its hash (0 bits: bucket 0).
    public static func bucket(_ id: UInt64, seed: UInt64, bucketBits: Int) -> UInt64 {
        precondition((0...maxBucketBits).contains(bucketBits), "bucketBits must be in 0...\(maxBucketBits)")
        return bucketBits == 0 ? 0 : hash(id, seed: seed) >> UInt64(64 - bucketBits)
    }

    /// Shard `index` of `count` parts of `0..<total` (rows of a table, or buckets): contiguous,
    /// in order, sizes differing by at most one, the larger ones last — part k is
    /// [⌊k·total/count⌋, ⌊(k+1)·total/count⌋). Every element is in exactly one part.
    public static func part(_ index: Int, of count: Int, total: UInt64) -> Range<UInt64> {
        precondition(count > 0 && (0..<count).contains(index), "shard \(index) of \(count)")
        func boundary(_ k: Int) -> UInt64 {
            // 128-bit product: total may be near 2^40 rows, count up to 2^24 shards.
            let (high, low) = total.multipliedFullWidth(by: UInt64(k))
            return UInt64(count).dividingFullWidth((high, low)).quotient
        }
        return boundary(index)..<boundary(index + 1)
    }

    /// The shard of `count` that owns element `element` of `0..<total`: the inverse of `part`.
    public static func owner(of element: UInt64, count: Int, total: UInt64) -> Int {
        precondition(element < total, "element \(element) of \(total)")
        // ⌊(e·count + count − 1) / total⌋ can overshoot by one at a boundary: correct it.
        let (high, low) = element.multipliedFullWidth(by: UInt64(count))
        var guess = Int(total.dividingFullWidth((high, low)).quotient)
        while guess + 1 < count && part(guess + 1, of: count, total: total).lowerBound <= element { guess += 1 }
        while part(guess, of: count, total: total).lowerBound > element { guess -= 1 }
        return guess
    }
}

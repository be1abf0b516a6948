/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and seedable per tensor, so a tensor's
/// values depend only on the seed and its name, not on the order tensors are written in.
struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        return Self.mix(state)
    }

    /// The SplitMix64 finalizer: a bijection on UInt64 (distinct inputs give distinct outputs).
    static func mix(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A uniform Float in [low, high) from the top 24 bits.
    mutating func nextFloat(_ low: Float, _ high: Float) -> Float {
        let unit = Float(next() >> 40) * (1.0 / 16_777_216.0)
        return low + (high - low) * unit
    }

    /// FNV-1a of a name, to derive per-tensor seeds.
    static func hash(_ text: String) -> UInt64 {
        FNV1a.hash(text.utf8)
    }
}

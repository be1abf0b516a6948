/// Scores as unsigned keys in the same order, so that they sort as plain integers (and a
/// label rides in the low bit): positive floats get the sign bit set, negative ones every bit
/// flipped; −0 is +0 (they tie, as `==` says).
enum ScoreKey {
    static func ordered(_ x: Float) -> UInt32 {
        let bits = (x + 0).bitPattern
        return bits & 0x8000_0000 != 0 ? ~bits : bits | 0x8000_0000
    }

    static func ordered(_ x: Double) -> UInt64 {
        let bits = (x + 0).bitPattern
        return bits & (1 << 63) != 0 ? ~bits : bits | (1 << 63)
    }

    /// The value of a Double's `ordered` key.
    static func value(_ key: UInt64) -> Double {
        Double(bitPattern: key & (1 << 63) != 0 ? key & ~(1 << 63) : ~key)
    }

    /// A logit's key above its label's bit: labelled scores sort by score, ties negatives first.
    static func labelled(_ logit: Float, positive: Bool) -> UInt64 {
        UInt64(ordered(logit)) << 1 | (positive ? 1 : 0)
    }

    /// The logit of a `labelled` key.
    static func logit(_ labelled: UInt64) -> Float {
        let key = UInt32(truncatingIfNeeded: labelled >> 1)
        return Float(bitPattern: key & 0x8000_0000 != 0 ? key & 0x7fff_ffff : ~key)
    }
}

/// Labelled scores fed in ascending order, cut into groups of equal scores (ties): a group
/// ends when the next score differs, or at `finish`.
struct TieGroups {
    struct Group {
        /// The group's place among the groups, from the lowest score.
        var index = 0
        /// Samples of lower scores.
        var positivesBelow = 0, negativesBelow = 0
        var positives = 0, negatives = 0
    }

    private var key: UInt64?
    private var current = Group()

    /// The group this score ended, if it differs from the one before.
    mutating func add(_ key: UInt64, positive: Bool) -> Group? {
        let ended = key != self.key ? finish() : nil
        self.key = key
        if positive { current.positives += 1 } else { current.negatives += 1 }
        return ended
    }

    /// Ends the group being filled, if any.
    mutating func finish() -> Group? {
        guard key != nil else { return nil }
        defer {
            current = Group(index: current.index + 1, positivesBelow: current.positivesBelow + current.positives,
                            negativesBelow: current.negativesBelow + current.negatives)
            key = nil
        }
        return current
    }
}

/// The ROC AUC by the rank-sum (Mann–Whitney) formula from labelled scores fed in ascending
/// order, tied scores sharing their average rank. The sum is of half-integers, exact below
/// 2^53.
struct RankSum {
    private var ties = TieGroups()
    private(set) var positives = 0, negatives = 0, groups = 0
    private var sum = 0.0

    var count: Int { positives + negatives }

    mutating func add(_ key: UInt64, positive: Bool) {
        if let group = ties.add(key, positive: positive) { count(group) }
    }

    /// Counts the last group: call once, after the last score.
    mutating func finish() {
        if let group = ties.finish() { count(group) }
    }

    private mutating func count(_ group: TieGroups.Group) {
        let first = positives + negatives, size = group.positives + group.negatives
        sum += Double(group.positives) * (Double(2 * first + size - 1) / 2 + 1)
        positives += group.positives
        negatives += group.negatives
        groups += 1
    }

    /// After `finish`; nil unless both classes are present.
    var auc: Double? {
        guard positives > 0, negatives > 0 else { return nil }
        let p = Double(positives)
        return (sum - p * (p + 1) / 2) / (p * Double(negatives))
    }
}

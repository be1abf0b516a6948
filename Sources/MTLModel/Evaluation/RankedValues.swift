/// A value for each sample from its place in an order of the samples, read back in sample
/// order, in bounded memory: the samples (`KeyPair`: a score's ordered key, then the sample's
/// index above its label bit) are read in score order twice — once to count each group of tied
/// scores, once to give each sample its value knowing its group's counts — and the values go
/// to a sorter by sample index. The paired statistics of two models (DeLong's test, rank
/// correlation) join two such streams sample by sample.
struct RankedValues {
    /// A sample's value and what else the join needs of it.
    struct Value: Comparable, BitwiseCopyable {
        var index: UInt64
        var value: Double
        /// The sample's score (a probability), for the joint histogram.
        var score: Float
        /// The label (`PairedAUC`), or whether the sample is among the top k (`PredictionShift`).
        var flag: Bool

        static func < (a: Value, b: Value) -> Bool { a.index < b.index }
        static func == (a: Value, b: Value) -> Bool { a.index == b.index }
    }


    /// Where a sample stands: the samples of lower scores and those tied with it, by label,
    /// and its position (0-based) in the order, ties by index.
    struct Place {
        var positive: Bool
        var below: (positives: Int, negatives: Int)
        var tied: (positives: Int, negatives: Int)
        var position: Int
        var score: Double
    }

    /// The values of `samples` (read twice) in sample order.
    static func byIndex(_ samples: ExternalSorter<KeyPair>, name: String, for purpose: String, memoryBudget: Int,
                        value: (Place) -> (Double, Bool)) throws(MTLModelError) -> ExternalSorter<Value> {
        let groups = ExternalSorter<KeyPair>(name: name, for: purpose, memoryBudget: memoryBudget / 4)
        func count(_ group: TieGroups.Group) throws(MTLModelError) {
            // Each class's count in 32 bits: 4G samples of one score would be beyond them.
            guard group.positives >> 32 == 0 && group.negatives >> 32 == 0 else {
                throw MTLModelError(.unsupported, "\(purpose): more than \(UInt32.max) samples share one score")
            }
            try groups.append(KeyPair(high: UInt64(group.index), low: UInt64(group.positives) << 32 | UInt64(group.negatives)))
        }
        var ties = TieGroups()
        let first = try samples.sorted()
        while let sample = try first.next() {
            if let group = ties.add(sample.high, positive: sample.low & 1 == 1) { try count(group) }
        }
        if let group = ties.finish() { try count(group) }
        let values = ExternalSorter<Value>(name: name, for: purpose, memoryBudget: memoryBudget)
        let second = try samples.sorted(), counts = try groups.sorted()
        var place = Place(positive: false, below: (0, 0), tied: (0, 0), position: 0, score: 0), left = 0
        while let sample = try second.next() {
            if left == 0, let group = try counts.next() {
                place.below = (place.below.positives + place.tied.positives, place.below.negatives + place.tied.negatives)
                place.tied = (Int(group.low >> 32), Int(group.low & 0xffff_ffff))
                left = place.tied.positives + place.tied.negatives
            }
            left -= 1
            (place.positive, place.score) = (sample.low & 1 == 1, ScoreKey.value(sample.high))
            let (result, flag) = value(place)
            try values.append(Value(index: sample.low >> 1, value: result, score: Float(place.score), flag: flag))
            place.position += 1
        }
        return values
    }
}

extension RankedValues.Value: RadixSortable {
    static let radixKeyBytes = keyBytes(at: MemoryLayout<Self>.offset(of: \.index)!, size: 8)
}

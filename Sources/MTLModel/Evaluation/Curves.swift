/// The ROC curve of one task: (false positive rate, true positive rate) from the highest score
/// down, tied scores taken together (one diagonal step), at most `maxPoints` points kept
/// (evenly by rank: a chart cannot show more; (0, 0) and (1, 1) always among them). Made by
/// `Evaluator.finish`.
public struct ROCCurve: Sendable, Codable, Hashable {
    public static let maxPoints = 512
    public var falsePositiveRates: [Double]
    public var truePositiveRates: [Double]
}

/// A reliability diagram of one task: the samples sorted by predicted probability and cut into
/// `binCount` bins of (nearly) equal counts — where a click-through rate of 0.5% puts every
/// sample in the first of ten equal-width bins, equal counts show calibration where the
/// predictions are — each bin's range, count, mean prediction and observed positive rate.
public struct ReliabilityDiagram: Sendable, Codable, Hashable {
    public struct Bin: Sendable, Codable, Hashable {
        /// The smallest and largest prediction in the bin.
        public var lower: Double
        public var upper: Double
        public var count: Int
        public var meanPrediction: Double
        public var positiveRate: Double
    }

    public static let binCount = 10
    public var bins: [Bin]
}

/// A reliability diagram's bins from `count` predictions fed in ascending order: bin b holds
/// ranks b·count/bins ..< (b + 1)·count/bins (fewer bins than 10 only with fewer samples).
struct ReliabilityBinning {
    private let count: Int, binCount: Int
    private var rank = 0, first = 0.0, last = 0.0, sum = 0.0, positives = 0
    private(set) var bins: [ReliabilityDiagram.Bin] = []

    init(count: Int) {
        (self.count, binCount) = (count, min(ReliabilityDiagram.binCount, count))
    }

    mutating func add(probability: Double, positive: Bool) {
        let start = bins.count * count / binCount, end = (bins.count + 1) * count / binCount
        if rank == start { (first, sum, positives) = (probability, 0, 0) }
        sum += probability
        if positive { positives += 1 }
        last = probability
        rank += 1
        if rank == end {
            let size = end - start
            bins.append(.init(lower: first, upper: last, count: size, meanPrediction: sum / Double(size),
                              positiveRate: Double(positives) / Double(size)))
        }
    }
}

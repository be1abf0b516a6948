import Foundation

/// How far two models' predictions of the same samples moved, and how much their rankings
/// agree, in bounded memory: |Δp| sorted for its quantiles; each model's probabilities in
/// order for their mid-ranks and top k (`RankedValues`), joined sample by sample for the rank
/// correlation, the top-k overlap and the joint histogram.
final class PredictionShift {
    /// Per model: the probability's ordered key, the sample's index (above a label bit of 0).
    private let probabilities: [ExternalSorter<KeyPair>]
    private let deltas: ExternalSorter<UInt32>
    private let memoryBudget: Int
    private var count = 0
    private var largest: Float = 0
    /// Model A's mid-ranks and top-k flags in sample order: given (a reference model's, from an
    /// earlier comparison on the same data: A's probabilities are then not kept), or once
    /// `fill` has run.
    private(set) var ranksA: ExternalSorter<RankedValues.Value>?

    init(memoryBudget: Int, ranksA: ExternalSorter<RankedValues.Value>? = nil) {
        (self.memoryBudget, self.ranksA) = (memoryBudget, ranksA)
        probabilities = ["A", "B"].map {
            ExternalSorter(name: "shift-\($0)", for: "the probabilities of model \($0)", memoryBudget: memoryBudget / 3)
        }
        deltas = ExternalSorter(name: "shift-delta", for: "the probabilities' changes", memoryBudget: memoryBudget / 3)
    }

    func add(_ a: Float, _ b: Float) throws(MTLModelError) {
        if ranksA == nil { try probabilities[0].append(KeyPair(high: ScoreKey.ordered(Double(a)), low: UInt64(count) << 1)) }
        try probabilities[1].append(KeyPair(high: ScoreKey.ordered(Double(b)), low: UInt64(count) << 1))
        // A non-negative float's bits are in its order.
        try deltas.append(abs(b - a).bitPattern)
        largest = max(largest, a, b)
        count += 1
    }

    /// The task's shift fields: nothing without samples.
    func fill(_ task: inout QualityComparison.Task) throws(MTLModelError) {
        guard count > 0 else { return }
        try fillDeltas(&task)
        // The joint range: the largest probability of either, rounded up to a tenth (or to a
        // power of ten below 0.1: a click-through rate of 0.5% would fill one bin of [0, 1]).
        let largest = Double(largest)
        let range = largest >= 0.1 ? min(1, (largest * 10).rounded(.up) / 10) : max(1e-6, pow(10, (log10(max(largest, 1e-7))).rounded(.up)))
        let bins = QualityComparison.jointBinCount, k = max(1, count / 100)
        func ranks(_ sorted: ExternalSorter<KeyPair>) throws(MTLModelError) -> ExternalSorter<RankedValues.Value> {
            try RankedValues.byIndex(sorted, name: "shift", for: "the probabilities' ranks", memoryBudget: memoryBudget / 3) { place in
                (Double(2 * place.below.negatives + place.tied.negatives - 1) / 2 + 1, place.position >= count - k)
            }
        }
        if ranksA == nil { ranksA = try ranks(probabilities[0]) }
        let ranks = [ranksA!, try ranks(probabilities[1])]
        var joint = [[Int]](repeating: [Int](repeating: 0, count: bins), count: bins)
        let mean = Double(count + 1) / 2
        var covariance = 0.0, varianceA = 0.0, varianceB = 0.0, overlap = 0
        let a = try ranks[0].sorted(), b = try ranks[1].sorted()
        while let x = try a.next(), let y = try b.next() {
            covariance += (x.value - mean) * (y.value - mean)
            varianceA += (x.value - mean) * (x.value - mean)
            varianceB += (y.value - mean) * (y.value - mean)
            if x.flag && y.flag { overlap += 1 }
            joint[min(bins - 1, Int(Double(x.score) / range * Double(bins)))][min(bins - 1, Int(Double(y.score) / range * Double(bins)))] += 1
        }
        task.jointCounts = joint
        task.jointRange = range
        task.rankCorrelation = varianceA == 0 || varianceB == 0 ? (varianceA == varianceB ? 1 : 0) : covariance / (varianceA * varianceB).squareRoot()
        task.topK = k
        task.topKOverlap = Double(overlap) / Double(k)
    }

    /// |Δp|'s histogram, mean (summed in ascending order), median, 99th percentile and maximum.
    private func fillDeltas(_ task: inout QualityComparison.Task) throws(MTLModelError) {
        let edges = QualityComparison.deltaPHistogramEdges
        var histogram = [Int](repeating: 0, count: edges.count + 2)
        let p50 = (count - 1) / 2, p99 = min(count - 1, Int((Double(count - 1) * 0.99).rounded(.up)))
        var sum = 0.0, position = 0
        try deltas.forEachSorted { bits in
            let delta = Double(Float(bitPattern: bits))
            histogram[delta == 0 ? 0 : 1 + (edges.firstIndex { delta < $0 } ?? edges.count)] += 1
            sum += delta
            if position == p50 { task.p50AbsoluteDeltaP = delta }
            if position == p99 { task.p99AbsoluteDeltaP = delta }
            task.maxAbsoluteDeltaP = delta
            position += 1
        }
        task.deltaPHistogram = histogram
        task.meanAbsoluteDeltaP = sum / Double(count)
    }
}

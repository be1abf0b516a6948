import Foundation

/// DeLong's test for two correlated AUCs (two models scoring the same samples), computed
/// with Sun & Xu's fast algorithm from mid-ranks, in bounded memory.
///
/// DeLong, DeLong, Clarke-Pearson (1988), "Comparing the areas under two or more correlated
/// receiver operating characteristic curves"; Sun, Xu (2014), "Fast implementation of
/// DeLong's algorithm".
///
/// A positive's component V10 is the share of negatives scored below it (ties count half), a
/// negative's V01 the share of positives scored above it: each depends on the sample's place
/// among the scores only, so each model's components come from its scores in order
/// (`RankedValues`), and the covariances of the two models' components from joining them
/// sample by sample.
public final class PairedAUC {
    public struct Result: Sendable, Hashable, Codable {
        public var aucA: Double
        public var aucB: Double
        /// aucB − aucA.
        public var delta: Double
        public var standardError: Double
        /// 95% confidence interval of `delta`.
        public var low: Double
        public var high: Double
    }

    /// Per model: the score's ordered key, the sample's index above its label.
    private let scores: [ExternalSorter<KeyPair>]
    private let memoryBudget: Int
    private var positives = 0, negatives = 0
    /// Model A's components in sample order: given (a reference model's, from an earlier
    /// comparison on the same data: A's scores are then not kept), or once `result` has run.
    private(set) var componentsA: ExternalSorter<RankedValues.Value>?

    init(memoryBudget: Int, componentsA: ExternalSorter<RankedValues.Value>? = nil) {
        (self.memoryBudget, self.componentsA) = (memoryBudget, componentsA)
        scores = ["A", "B"].map { ExternalSorter(name: "delong-\($0)", for: "the labelled scores of model \($0)", memoryBudget: memoryBudget / 2) }
    }

    func add(_ a: Double, _ b: Double, positive: Bool) throws(MTLModelError) {
        let low = UInt64(positives + negatives) << 1 | (positive ? 1 : 0)
        if componentsA == nil { try scores[0].append(KeyPair(high: ScoreKey.ordered(a), low: low)) }
        try scores[1].append(KeyPair(high: ScoreKey.ordered(b), low: low))
        if positive { positives += 1 } else { negatives += 1 }
    }

    /// nil unless both classes are present.
    func result() throws(MTLModelError) -> Result? {
        let m = Double(positives), n = Double(negatives)
        guard positives > 0, negatives > 0 else { return nil }
        func components(_ sorted: ExternalSorter<KeyPair>) throws(MTLModelError) -> ExternalSorter<RankedValues.Value> {
            try RankedValues.byIndex(sorted, name: "delong", for: "DeLong's components", memoryBudget: memoryBudget / 2) { place in
                (place.positive ? (Double(place.below.negatives) + Double(place.tied.negatives) / 2) / n
                                : 1 - (Double(place.below.positives) + Double(place.tied.positives) / 2) / m, place.positive)
            }
        }
        if componentsA == nil { componentsA = try components(scores[0]) }
        let components = [componentsA!, try components(scores[1])]
        // The means first (sums in sample order), then the covariances about them.
        var means: [(v10: Double, v01: Double)] = []
        for values in components {
            var v10 = 0.0, v01 = 0.0
            try values.forEachSorted { if $0.flag { v10 += $0.value } else { v01 += $0.value } }
            means.append((v10 / m, v01 / n))
        }
        var s10 = (aa: 0.0, bb: 0.0, ab: 0.0), s01 = s10
        let a = try components[0].sorted(), b = try components[1].sorted()
        while let x = try a.next(), let y = try b.next() {
            if x.flag {
                let p = x.value - means[0].v10, q = y.value - means[1].v10
                s10 = (s10.aa + p * p, s10.bb + q * q, s10.ab + p * q)
            } else {
                let p = x.value - means[0].v01, q = y.value - means[1].v01
                s01 = (s01.aa + p * p, s01.bb + q * q, s01.ab + p * q)
            }
        }
        func covariance(_ sum: Double, _ count: Int) -> Double { count > 1 ? sum / Double(count - 1) : 0 }
        let variance = (covariance(s10.aa, positives) + covariance(s10.bb, positives) - 2 * covariance(s10.ab, positives)) / m
            + (covariance(s01.aa, negatives) + covariance(s01.bb, negatives) - 2 * covariance(s01.ab, negatives)) / n
        let se = max(variance, 0).squareRoot()
        let delta = means[1].v10 - means[0].v10
        return Result(aucA: means[0].v10, aucB: means[1].v10, delta: delta, standardError: se, low: delta - 1.959964 * se, high: delta + 1.959964 * se)
    }

    /// - Returns: nil unless both classes are present.
    public static func compare(_ a: [Double], _ b: [Double], labels: [Bool]) throws(MTLModelError) -> Result? {
        let paired = PairedAUC(memoryBudget: 64 << 20)
        for i in labels.indices { try paired.add(a[i], b[i], positive: labels[i]) }
        return try paired.result()
    }
}

import Foundation

/// The ROC curve of one task: (false positive rate, true positive rate) from the highest score
/// down, tied scores taken together (one diagonal step), at most `maxPoints` points kept
/// (evenly by rank: a chart cannot show more).
public struct ROCCurve: Sendable, Codable, Hashable {
    public var falsePositiveRates: [Double]
    public var truePositiveRates: [Double]

    /// nil without both classes.
    public init?(scores: [Double], labels: [Bool], maxPoints: Int = 512) {
        let positives = labels.reduce(0) { $0 + ($1 ? 1 : 0) }, negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var fpr = [0.0], tpr = [0.0]
        var truePositives = 0, falsePositives = 0, start = 0
        while start < order.count {
            var end = start
            while end < order.count && scores[order[end]] == scores[order[start]] {
                if labels[order[end]] { truePositives += 1 } else { falsePositives += 1 }
                end += 1
            }
            fpr.append(Double(falsePositives) / Double(negatives))
            tpr.append(Double(truePositives) / Double(positives))
            start = end
        }
        // Every step-th point and the last, (0, 0) and (1, 1) always among them.
        let step = max(1, (fpr.count - 1 + maxPoints - 2) / max(1, maxPoints - 1))
        let kept = Array(stride(from: 0, to: fpr.count - 1, by: step)) + [fpr.count - 1]
        falsePositiveRates = kept.map { fpr[$0] }
        truePositiveRates = kept.map { tpr[$0] }
    }
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

    public var bins: [Bin]

    public init(probabilities: [Double], labels: [Bool], binCount: Int = 10) {
        let order = probabilities.indices.sorted { probabilities[$0] < probabilities[$1] }
        let count = order.count
        bins = (0..<min(binCount, count)).map { b in
            let members = order[(b * count / min(binCount, count))..<((b + 1) * count / min(binCount, count))]
            let sum = members.reduce(0.0) { $0 + probabilities[$1] }, positives = members.reduce(0) { $0 + (labels[$1] ? 1 : 0) }
            return Bin(lower: probabilities[members.first!], upper: probabilities[members.last!], count: members.count,
                       meanPrediction: sum / Double(members.count), positiveRate: Double(positives) / Double(members.count))
        }
    }
}

extension Evaluator {
    /// Task `t`'s ROC curve; nil without both classes.
    public func roc(task t: Int) -> ROCCurve? {
        ROCCurve(scores: logits(task: t).map(Double.init), labels: labels(task: t))
    }

    /// Task `t`'s reliability diagram.
    public func reliability(task t: Int) -> ReliabilityDiagram {
        ReliabilityDiagram(probabilities: logits(task: t).map { 1 / (1 + exp(-Double($0))) }, labels: labels(task: t))
    }
}

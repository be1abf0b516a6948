import Foundation

/// Metrics of one task on a labelled dataset.
public struct TaskMetrics: Sendable, Codable, Hashable {
    public var task: String
    /// Samples with a known label for this task (`-` labels are left out).
    public var samples: Int
    public var positives: Int
    /// Area under the ROC curve, ties counted as average ranks; nil without both classes.
    public var auc: Double?
    public var logloss: Double?
    public var meanPrediction: Double?
    public var meanLabel: Double?
    /// Mean prediction / mean label; nil without positives.
    public var calibration: Double?
    /// AUC of the fused ranking score against this task's labels.
    public var fusedAUC: Double?
    /// Group AUC (with a group field): the AUC within each group (a user), weighted by the
    /// group's samples, over the groups that hold both classes; how many groups and samples
    /// those are.
    public var groupAUC: Double?
    public var groupAUCGroups: Int?
    public var groupAUCSamples: Int?

    public init(task: String, samples: Int, positives: Int) {
        self.task = task
        self.samples = samples
        self.positives = positives
    }
}

/// What `Evaluator.finish` found: per task its metrics, ROC curve (nil without both classes,
/// or when not asked for) and reliability diagram.
public struct Evaluation: Sendable {
    public var metrics: [TaskMetrics]
    public var roc: [ROCCurve?]
    public var reliability: [ReliabilityDiagram]
}

/// Accumulates predictions and labels batch by batch and computes per-task metrics, in
/// bounded memory whatever the dataset's size.
///
/// Logloss and AUC are computed from the logits, in double precision: a probability rounded
/// to float saturates at 0 or 1 (turning a finite loss into a clipped one) and ties samples
/// whose scores differ. Sums (logloss, mean prediction) are taken sample by sample as the
/// batches come; what needs an order (the exact AUC, the group AUC, the curves) goes to
/// `ExternalSorter`s of 8 or 16 bytes a labelled sample and task, which spill sorted runs to
/// a temporary file beyond `memoryBudget` bytes in all and merge them when read.
public final class Evaluator {
    public let taskNames: [String]
    /// The field whose first id in a sample is its group (`groupAUC`); nil: no groups.
    public let groupField: Int?
    /// Per task: each labelled sample's logit with its label (`ScoreKey.labelled`).
    private let scores: [ExternalSorter<UInt64>]
    /// Per task: the fused score's key with the label.
    private let fusedScores: [ExternalSorter<KeyPair>]
    /// Per task (with a group field): the group id with the labelled logit.
    private let groupScores: [ExternalSorter<KeyPair>]
    private var sums: [LossSums]
    public private(set) var sampleCount = 0

    /// What the sorters keep in memory in all before they spill: 64 MiB.
    public static let defaultMemoryBudget = 64 << 20

    public init(taskNames: [String], groupField: Int? = nil, memoryBudget: Int = defaultMemoryBudget) {
        self.taskNames = taskNames
        self.groupField = groupField
        let share = memoryBudget / max(1, taskNames.count * (groupField == nil ? 2 : 3))
        scores = taskNames.map { ExternalSorter(name: "eval-\($0)", for: "the scores of task \($0)", memoryBudget: share) }
        fusedScores = taskNames.map { ExternalSorter(name: "eval-fused-\($0)", for: "the fused scores of task \($0)", memoryBudget: share) }
        groupScores = groupField == nil ? [] : taskNames.map {
            ExternalSorter(name: "eval-groups-\($0)", for: "the scores by group of task \($0)", memoryBudget: share)
        }
        sums = Array(repeating: LossSums(), count: taskNames.count)
    }

    /// How many sorted runs went to temporary files (0: the dataset fitted in memory).
    public var spilledRunCount: Int {
        scores.reduce(0) { $0 + $1.runCount } + (fusedScores + groupScores).reduce(0) { $0 + $1.runCount }
    }

    public func add(_ batch: SampleBatch, _ predictions: Predictions) throws(MTLModelError) {
        let taskCount = taskNames.count
        for sample in 0..<batch.count {
            let group = groupField.flatMap { field in
                (Int(batch.entryStart[sample])..<Int(batch.entryStart[sample + 1])).first { batch.entryField[$0] == field }.map { batch.entryID[$0] }
            }
            for t in 0..<taskCount {
                let label = batch.labels[sample * taskCount + t]
                guard label >= 0 else { continue }
                let logit = predictions.logits[sample * taskCount + t], positive = label == 1
                sums[t].add(logit: Double(logit), positive: positive)
                let score = ScoreKey.labelled(logit, positive: positive)
                try scores[t].append(score)
                try fusedScores[t].append(KeyPair(high: ScoreKey.ordered(predictions.fused[sample]), low: positive ? 1 : 0))
                if let group { try groupScores[t].append(KeyPair(high: group, low: score)) }
            }
        }
        sampleCount += batch.count
    }

    /// Every task's metrics and curves (reads the sorted scores: a pass over each task's
    /// logits, a second one for the ROC curve if `roc`, one over its fused scores and one over
    /// its groups).
    public func finish(roc: Bool = true) throws(MTLModelError) -> Evaluation {
        var evaluation = Evaluation(metrics: [], roc: [], reliability: [])
        for t in taskNames.indices {
            let n = sums[t].count
            var metrics = TaskMetrics(task: taskNames[t], samples: n, positives: sums[t].positives)
            var reliability = ReliabilityBinning(count: n)
            var ranks = RankSum()
            try scores[t].forEachSorted { value in
                ranks.add(value >> 1, positive: value & 1 == 1)
                reliability.add(probability: 1 / (1 + exp(-Double(ScoreKey.logit(value)))), positive: value & 1 == 1)
            }
            ranks.finish()
            if n > 0 {
                sums[t].fill(&metrics)
                metrics.auc = ranks.auc
                metrics.fusedAUC = try fusedAUC(task: t)
                if groupField != nil { (metrics.groupAUC, metrics.groupAUCGroups, metrics.groupAUCSamples) = try groupAUC(task: t) }
            }
            evaluation.metrics.append(metrics)
            evaluation.roc.append(roc ? try rocCurve(task: t, ranks) : nil)
            evaluation.reliability.append(ReliabilityDiagram(bins: reliability.bins))
        }
        return evaluation
    }

    private func fusedAUC(task t: Int) throws(MTLModelError) -> Double? {
        var ranks = RankSum()
        try fusedScores[t].forEachSorted { pair in ranks.add(pair.high, positive: pair.low == 1) }
        ranks.finish()
        return ranks.auc
    }

    /// The AUC within each group holding both classes, weighted by its samples; the groups and
    /// samples counted. Samples without a group are left out.
    private func groupAUC(task t: Int) throws(MTLModelError) -> (Double?, Int, Int) {
        var weighted = 0.0, groupCount = 0, sampleCount = 0
        var group: UInt64?, ranks = RankSum()
        func endGroup() {
            ranks.finish()
            if let auc = ranks.auc {
                weighted += auc * Double(ranks.count)
                groupCount += 1
                sampleCount += ranks.count
            }
            ranks = RankSum()
        }
        try groupScores[t].forEachSorted { pair in
            if pair.high != group { endGroup(); group = pair.high }
            ranks.add(pair.low >> 1, positive: pair.low & 1 == 1)
        }
        endGroup()
        return (sampleCount == 0 ? nil : weighted / Double(sampleCount), groupCount, sampleCount)
    }

    /// The ROC curve from the highest score down, at most `ROCCurve.maxPoints` points evenly by
    /// rank: a second pass over the sorted logits (ascending), which keeps the points whose
    /// index from the top is a multiple of the step, then turns them around.
    private func rocCurve(task t: Int, _ ranks: RankSum) throws(MTLModelError) -> ROCCurve? {
        guard ranks.auc != nil else { return nil }
        let distinct = ranks.groups, maxPoints = ROCCurve.maxPoints
        let step = max(1, (distinct + maxPoints - 2) / max(1, maxPoints - 1))
        var falsePositiveRates: [Double] = [], truePositiveRates: [Double] = [], ties = TieGroups()
        func keep(_ group: TieGroups.Group) {
            let fromTop = distinct - group.index
            guard fromTop % step == 0 || group.index == 0 else { return }
            falsePositiveRates.append(Double(ranks.negatives - group.negativesBelow) / Double(ranks.negatives))
            truePositiveRates.append(Double(ranks.positives - group.positivesBelow) / Double(ranks.positives))
        }
        try scores[t].forEachSorted { value in
            if let group = ties.add(value >> 1, positive: value & 1 == 1) { keep(group) }
        }
        if let group = ties.finish() { keep(group) }
        return ROCCurve(falsePositiveRates: [0] + falsePositiveRates.reversed(), truePositiveRates: [0] + truePositiveRates.reversed())
    }

    static func softplus(_ x: Double) -> Double {
        x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
    }

    /// The ROC AUC by the rank-sum (Mann–Whitney) formula, tied scores sharing their average
    /// rank; nil unless both classes are present.
    public static func auc(_ scores: [Double], _ labels: [Bool]) -> Double? {
        var ranks = RankSum()
        for i in scores.indices.sorted(by: { scores[$0] < scores[$1] }) { ranks.add(ScoreKey.ordered(scores[i]), positive: labels[i]) }
        ranks.finish()
        return ranks.auc
    }
}

/// One task's sums over its labelled samples, in sample order.
private struct LossSums {
    var count = 0, positives = 0, loss = 0.0, prediction = 0.0

    mutating func add(logit x: Double, positive: Bool) {
        count += 1
        if positive { positives += 1 }
        // −log σ(x) = softplus(−x) and −log(1 − σ(x)) = softplus(x): exact for any logit.
        loss += Evaluator.softplus(positive ? -x : x)
        prediction += 1 / (1 + exp(-x))
    }

    func fill(_ metrics: inout TaskMetrics) {
        metrics.logloss = loss / Double(count)
        metrics.meanPrediction = prediction / Double(count)
        metrics.meanLabel = Double(positives) / Double(count)
        if positives > 0 { metrics.calibration = metrics.meanPrediction! / metrics.meanLabel! }
    }
}

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

/// Accumulates predictions and labels batch by batch and computes per-task metrics.
///
/// Logloss and AUC are computed from the logits, in double precision: a probability rounded
/// to float saturates at 0 or 1 (turning a finite loss into a clipped one) and ties samples
/// whose scores differ.
///
/// - Complexity: keeps 13 bytes per labelled sample and task (the exact AUC needs a sort).
public struct Evaluator: Sendable {
    public let taskNames: [String]
    /// The field whose first id in a sample is its group (`groupAUC`); nil: no groups.
    public let groupField: Int?
    private var logits: [[Float]]
    /// Per task, each labelled sample's group id (nil: the sample has no id of the field).
    private var groups: [[UInt64?]]
    private var fused: [[Double]]
    private var labels: [[Bool]]
    public private(set) var sampleCount = 0

    public init(taskNames: [String], groupField: Int? = nil) {
        self.taskNames = taskNames
        self.groupField = groupField
        groups = Array(repeating: [], count: groupField == nil ? 0 : taskNames.count)
        logits = Array(repeating: [], count: taskNames.count)
        fused = Array(repeating: [], count: taskNames.count)
        labels = Array(repeating: [], count: taskNames.count)
    }

    public mutating func add(_ batch: SampleBatch, _ predictions: Predictions) {
        let taskCount = taskNames.count
        for sample in 0..<batch.count {
            let group = groupField.flatMap { field in
                (Int(batch.entryStart[sample])..<Int(batch.entryStart[sample + 1])).first { batch.entryField[$0] == field }.map { batch.entryID[$0] }
            }
            for t in 0..<taskCount {
                let label = batch.labels[sample * taskCount + t]
                guard label >= 0 else { continue }
                logits[t].append(predictions.logits[sample * taskCount + t])
                fused[t].append(predictions.fused[sample])
                labels[t].append(label == 1)
                if groupField != nil { groups[t].append(group) }
            }
        }
        sampleCount += batch.count
    }

    /// The logits and labels kept for task `t`, in sample order.
    func logits(task t: Int) -> [Float] { logits[t] }
    func labels(task t: Int) -> [Bool] { labels[t] }

    public func metrics() -> [TaskMetrics] {
        taskNames.indices.map { t in
            let n = labels[t].count
            let positives = labels[t].reduce(0) { $0 + ($1 ? 1 : 0) }
            var metrics = TaskMetrics(task: taskNames[t], samples: n, positives: positives)
            guard n > 0 else { return metrics }
            var loss = 0.0, sumPrediction = 0.0
            for i in 0..<n {
                // −log σ(x) = softplus(−x) and −log(1 − σ(x)) = softplus(x): exact for any logit.
                let x = Double(logits[t][i])
                loss += Self.softplus(labels[t][i] ? -x : x)
                sumPrediction += 1 / (1 + exp(-x))
            }
            metrics.logloss = loss / Double(n)
            metrics.meanPrediction = sumPrediction / Double(n)
            metrics.meanLabel = Double(positives) / Double(n)
            if positives > 0 { metrics.calibration = metrics.meanPrediction! / metrics.meanLabel! }
            metrics.auc = Self.auc(logits[t].map(Double.init), labels[t])
            metrics.fusedAUC = Self.auc(fused[t], labels[t])
            if groupField != nil { (metrics.groupAUC, metrics.groupAUCGroups, metrics.groupAUCSamples) = groupAUC(task: t) }
            return metrics
        }
    }

    /// The AUC within each group holding both classes, weighted by its samples; the groups and
    /// samples counted. Samples without a group are left out.
    private func groupAUC(task t: Int) -> (Double?, Int, Int) {
        let order = groups[t].indices.filter { groups[t][$0] != nil }.sorted { groups[t][$0]! < groups[t][$1]! }
        var weighted = 0.0, groupCount = 0, sampleCount = 0, start = 0
        while start < order.count {
            var end = start
            while end < order.count && groups[t][order[end]] == groups[t][order[start]] { end += 1 }
            let members = order[start..<end]
            if let auc = Self.auc(members.map { Double(logits[t][$0]) }, members.map { labels[t][$0] }) {
                weighted += auc * Double(members.count)
                groupCount += 1
                sampleCount += members.count
            }
            start = end
        }
        return (sampleCount == 0 ? nil : weighted / Double(sampleCount), groupCount, sampleCount)
    }

    static func softplus(_ x: Double) -> Double {
        x > 0 ? x + log1p(exp(-x)) : log1p(exp(x))
    }

    /// The ROC AUC by the rank-sum (Mann–Whitney) formula, tied scores sharing their average
    /// rank; nil unless both classes are present.
    public static func auc(_ scores: [Double], _ labels: [Bool]) -> Double? {
        let positives = labels.reduce(0) { $0 + ($1 ? 1 : 0) }
        let negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let ranks = PairedAUC.midranks(scores)
        let rankSum = labels.indices.reduce(0.0) { $0 + (labels[$1] ? ranks[$1] : 0) }
        let p = Double(positives)
        return (rankSum - p * (p + 1) / 2) / (p * Double(negatives))
    }
}

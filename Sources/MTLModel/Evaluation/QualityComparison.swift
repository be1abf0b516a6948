import Foundation

/// How two models score the same labelled samples: per task the metrics of each and a paired
/// confidence interval of the AUC difference.
public struct QualityComparison: Sendable, Codable {
    /// Upper edges of `Task.deltaPHistogram`'s bins after the first (exactly 0).
    public static let deltaPHistogramEdges: [Double] = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
    public static let jointBinCount = 24

    public struct Task: Sendable, Codable {
        public var task: String
        public var before: TaskMetrics
        public var after: TaskMetrics
        public var deltaAUC: Double?
        /// 95% confidence interval of ΔAUC by DeLong's paired test.
        public var deltaAUCLow: Double?
        public var deltaAUCHigh: Double?
        public var deltaLogloss: Double?
        public var deltaCalibration: Double?
        /// |p_after − p_before| over every sample (labelled or not): mean, quantiles, max.
        public var meanAbsoluteDeltaP: Double?
        public var p50AbsoluteDeltaP: Double?
        public var p99AbsoluteDeltaP: Double?
        public var maxAbsoluteDeltaP: Double?
        /// Spearman's rank correlation of the two models' probabilities.
        public var rankCorrelation: Double?
        /// How many of each model's top-k samples (k = 1% of the samples, at least 1) the other
        /// model also ranks in its top k, as a fraction of k.
        public var topK: Int?
        public var topKOverlap: Double?
        /// Samples by |Δp|: `deltaPHistogram[0]` of no change, then one count per decade from
        /// below 1e-6 up to 1e-1 and above (`deltaPHistogramEdges`).
        public var deltaPHistogram: [Int]?
        /// How p_before and p_after spread together: `jointCounts[i][j]` samples with p_before
        /// in bin i and p_after in bin j of `jointBinCount` equal bins over [0, `jointRange`].
        public var jointCounts: [[Int]]?
        public var jointRange: Double?
        /// Each model's calibration bins on the labelled samples (`ReliabilityDiagram`).
        public var reliabilityBefore: ReliabilityDiagram?
        public var reliabilityAfter: ReliabilityDiagram?
    }

    public var sampleCount: Int
    public var skippedLineCount: Int
    public var tasks: [Task]

    /// Scores `data` with both models, batch by batch (each batch is read once).
    ///
    /// - Throws: when the models do not have the same fields and tasks (the data is read once,
    ///   for both), or on any error of the data.
    public static func compare(_ before: Model, _ after: Model, data: String, skipInvalid: Bool = false,
                               threadCount: Int = 1, batchSize: Int = 4096) throws -> QualityComparison {
        guard before.architecture.fields.map(\.name) == after.architecture.fields.map(\.name),
              before.architecture.tasks.map(\.name) == after.architecture.tasks.map(\.name) else {
            throw MTLModelError(.invalidArgument, "comparing predictions needs both models to have the same fields and tasks, in the same order",
                                file: after.path)
        }
        let predictorA = try Predictor(model: before, threadCount: threadCount)
        let predictorB = try Predictor(model: after, threadCount: threadCount)
        let names = before.architecture.tasks.map(\.name)
        let evaluatorA = Evaluator(taskNames: names), evaluatorB = Evaluator(taskNames: names)
        let reader = try DatasetReader(path: data, architecture: before.architecture, skipInvalid: skipInvalid)
        let batches = BatchPrefetcher(reader, taskCount: names.count, batchSize: batchSize)
        defer { batches.cancel() }
        var samples = Array(repeating: PairedSamples(), count: names.count)
        while let batch = try batches.next() {
            let a = try predictorA.predict(batch), b = try predictorB.predict(batch)
            try evaluatorA.add(batch, a)
            try evaluatorB.add(batch, b)
            for t in names.indices { samples[t].add(batch, a, b, task: t, of: names.count) }
        }
        let evaluationA = try evaluatorA.finish(), evaluationB = try evaluatorB.finish()
        let tasks = names.indices.map { t -> Task in
            let paired = PairedAUC.compare(samples[t].logitsA.map(Double.init), samples[t].logitsB.map(Double.init), labels: samples[t].labels)
            let a = evaluationA.metrics[t], b = evaluationB.metrics[t]
            var task = Task(task: names[t], before: a, after: b, deltaAUC: paired?.delta, deltaAUCLow: paired?.low, deltaAUCHigh: paired?.high,
                            deltaLogloss: a.logloss.flatMap { la in b.logloss.map { $0 - la } },
                            deltaCalibration: a.calibration.flatMap { ca in b.calibration.map { $0 - ca } })
            task.addShift(samples[t].probabilitiesA, samples[t].probabilitiesB)
            task.reliabilityBefore = evaluationA.reliability[t]
            task.reliabilityAfter = evaluationB.reliability[t]
            return task
        }
        return QualityComparison(sampleCount: evaluatorA.sampleCount, skippedLineCount: reader.skippedLineCount, tasks: tasks)
    }
}

/// One task's predictions by both models, kept whole for the paired statistics (DeLong's
/// test, rank correlation, the top-k overlap, the quantiles of |Δp|): every sample's
/// probabilities (8 bytes) and every labelled sample's logits and label (9 more), in memory:
/// `quantize --eval` and `convert --eval` take gate datasets, not whole test logs.
private struct PairedSamples {
    var probabilitiesA: [Float] = [], probabilitiesB: [Float] = []
    var logitsA: [Float] = [], logitsB: [Float] = []
    var labels: [Bool] = []

    mutating func add(_ batch: SampleBatch, _ a: Predictions, _ b: Predictions, task t: Int, of taskCount: Int) {
        for sample in 0..<batch.count {
            let i = sample * taskCount + t
            probabilitiesA.append(a.probabilities[i])
            probabilitiesB.append(b.probabilities[i])
            guard batch.labels[i] >= 0 else { continue }
            logitsA.append(a.logits[i])
            logitsB.append(b.logits[i])
            labels.append(batch.labels[i] == 1)
        }
    }
}

extension QualityComparison.Task {
    /// How far the predictions moved, sample by sample, and how much the rankings agree.
    mutating func addShift(_ a: [Float], _ b: [Float]) {
        guard !a.isEmpty else { return }
        let deltas = zip(a, b).map { Double(abs($1 - $0)) }.sorted()
        var histogram = [Int](repeating: 0, count: QualityComparison.deltaPHistogramEdges.count + 2)
        for delta in deltas {
            histogram[delta == 0 ? 0 : 1 + (QualityComparison.deltaPHistogramEdges.firstIndex { delta < $0 } ?? QualityComparison.deltaPHistogramEdges.count)] += 1
        }
        deltaPHistogram = histogram
        // The joint range: the largest probability of either, rounded up to a tenth (or to a
        // power of ten below 0.1: a click-through rate of 0.5% would fill one bin of [0, 1]).
        let largest = Double(max(a.max() ?? 0, b.max() ?? 0))
        let range = largest >= 0.1 ? min(1, (largest * 10).rounded(.up) / 10) : Swift.max(1e-6, pow(10, (log10(Swift.max(largest, 1e-7))).rounded(.up)))
        let bins = QualityComparison.jointBinCount
        var joint = [[Int]](repeating: [Int](repeating: 0, count: bins), count: bins)
        for (p, q) in zip(a, b) {
            joint[Swift.min(bins - 1, Int(Double(p) / range * Double(bins)))][Swift.min(bins - 1, Int(Double(q) / range * Double(bins)))] += 1
        }
        jointCounts = joint
        jointRange = range
        meanAbsoluteDeltaP = deltas.reduce(0, +) / Double(deltas.count)
        p50AbsoluteDeltaP = deltas[(deltas.count - 1) / 2]
        p99AbsoluteDeltaP = deltas[min(deltas.count - 1, Int((Double(deltas.count - 1) * 0.99).rounded(.up)))]
        maxAbsoluteDeltaP = deltas.last
        let ranksA = PairedAUC.midranks(a.map(Double.init)), ranksB = PairedAUC.midranks(b.map(Double.init))
        let mean = Double(a.count + 1) / 2
        var covariance = 0.0, varianceA = 0.0, varianceB = 0.0
        for i in a.indices {
            covariance += (ranksA[i] - mean) * (ranksB[i] - mean)
            varianceA += (ranksA[i] - mean) * (ranksA[i] - mean)
            varianceB += (ranksB[i] - mean) * (ranksB[i] - mean)
        }
        rankCorrelation = varianceA == 0 || varianceB == 0 ? (varianceA == varianceB ? 1 : 0) : covariance / (varianceA * varianceB).squareRoot()
        let k = max(1, a.count / 100)
        let topA = Set(a.indices.sorted { a[$0] > a[$1] }.prefix(k)), topB = Set(b.indices.sorted { b[$0] > b[$1] }.prefix(k))
        topK = k
        topKOverlap = Double(topA.intersection(topB).count) / Double(k)
    }
}

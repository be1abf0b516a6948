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
        try compare(ReferenceScores(before, recording: false), after, data: data, skipInvalid: skipInvalid, threadCount: threadCount, batchSize: batchSize)
    }

    /// The same with the reference model's side kept for the next comparisons on the same data
    /// (`reference`: its predictions and evaluation computed by the first, read back by the next).
    static func compare(_ reference: ReferenceScores, _ after: Model, data: String, skipInvalid: Bool = false,
                        threadCount: Int = 1, batchSize: Int = 4096) throws -> QualityComparison {
        let before = reference.model
        guard before.architecture.fields.map(\.name) == after.architecture.fields.map(\.name),
              before.architecture.tasks.map(\.name) == after.architecture.tasks.map(\.name) else {
            throw MTLModelError(.invalidArgument, "comparing predictions needs both models to have the same fields and tasks, in the same order",
                                file: after.path)
        }
        let replaying = reference.isRecorded
        if !replaying { reference.startRecording() }
        let predictorA = replaying ? nil : try Predictor(model: before, threadCount: threadCount)
        let predictorB = try Predictor(model: after, threadCount: threadCount)
        let statistics = PairedStatistics(taskNames: before.architecture.tasks.map(\.name), reference: replaying ? reference : nil)
        let reader = try DatasetReader(path: data, architecture: before.architecture, skipInvalid: skipInvalid)
        let batches = BatchPrefetcher(reader, taskCount: statistics.taskNames.count, batchSize: batchSize)
        defer { batches.cancel() }
        // Each batch's scores are recorded on a thread of their own while the next batch is
        // predicted (recording was a sixth of the CPU time, on the thread that predicts).
        let recorder = SerialWorker()
        defer { recorder.cancel() }
        var replayed = 0
        while let batch = try batches.next() {
            let a: Predictions
            if let predictorA {
                a = try predictorA.predict(batch)
                try reference.record(a)
            } else {
                a = try reference.replay(batch, at: &replayed, data: data)
            }
            let b = try predictorB.predict(batch)
            try recorder.submit { () throws(MTLModelError) in try statistics.add(batch, a, b) }
        }
        if replaying { try reference.finishReplay(at: replayed, data: data) }
        try recorder.finish()
        let (tasks, evaluationA) = try statistics.finish(threadCount: threadCount)
        if !replaying { try reference.finishRecording(evaluationA, components: statistics.componentsA, ranks: statistics.ranksA) }
        return QualityComparison(sampleCount: statistics.sampleCount, skippedLineCount: reader.skippedLineCount, tasks: tasks)
    }
}

/// What a comparison accumulates of two models' scores: each model's evaluation, and per task
/// DeLong's paired test and the prediction shift.
private final class PairedStatistics {
    typealias Task = QualityComparison.Task
    let taskNames: [String]
    /// Model A's evaluator, unless its evaluation is known (`ReferenceScores`).
    private let evaluatorA: Evaluator?, evaluatorB: Evaluator
    private let evaluationA: Evaluation?
    private let paired: [PairedAUC], shifts: [PredictionShift]

    /// - Parameter reference: model A's side of an earlier comparison on the same data (its
    ///   evaluation, components and ranks are then not computed again).
    init(taskNames: [String], reference: ReferenceScores?) {
        (self.taskNames, evaluationA) = (taskNames, reference?.evaluation)
        // 128 MiB of sorted scores in all: a quarter for each evaluator, half for the paired statistics.
        evaluatorA = evaluationA == nil ? Evaluator(taskNames: taskNames, memoryBudget: 32 << 20) : nil
        evaluatorB = Evaluator(taskNames: taskNames, memoryBudget: 32 << 20)
        let share = (64 << 20) / taskNames.count / 2
        paired = taskNames.indices.map { PairedAUC(memoryBudget: share, componentsA: reference?.components[$0]) }
        shifts = taskNames.indices.map { PredictionShift(memoryBudget: share, ranksA: reference?.ranks[$0]) }
    }

    /// Model A's side per task, once `finish` has run (what a `ReferenceScores` keeps).
    var componentsA: [ExternalSorter<RankedValues.Value>?] { paired.map(\.componentsA) }
    var ranksA: [ExternalSorter<RankedValues.Value>?] { shifts.map(\.ranksA) }

    var sampleCount: Int { evaluatorB.sampleCount }

    func add(_ batch: SampleBatch, _ a: Predictions, _ b: Predictions) throws(MTLModelError) {
        try evaluatorA?.add(batch, a)
        try evaluatorB.add(batch, b)
        let taskCount = taskNames.count
        for sample in 0..<batch.count {
            for t in 0..<taskCount {
                let i = sample * taskCount + t
                try shifts[t].add(a.probabilities[i], b.probabilities[i])
                if batch.labels[i] >= 0 { try paired[t].add(Double(a.logits[i]), Double(b.logits[i]), positive: batch.labels[i] == 1) }
            }
        }
    }

    /// Each task's comparison, and model A's evaluation. Each model's evaluation and each task's
    /// paired statistics and shift are independent reads of their own sorted scores: on
    /// `threadCount` threads (one after another, they were half of a comparison's time).
    func finish(threadCount: Int) throws(MTLModelError) -> (tasks: [Task], evaluationA: Evaluation) {
        enum Part: Sendable { case evaluation(Evaluation), interval(PairedAUC.Result?), shift(Task) }
        let count = taskNames.count
        let parts = try Concurrently.map(2 + 2 * count, threadCount: threadCount) { job throws(MTLModelError) -> Part in
            switch job {
            // No ROC curves: a comparison reports the reliability bins only.
            case 0: return .evaluation(try evaluatorA?.finish(roc: false) ?? evaluationA!)
            case 1: return .evaluation(try evaluatorB.finish(roc: false))
            case let j where j < 2 + count: return .interval(try paired[j - 2].result())
            case let j:
                let blank = TaskMetrics(task: taskNames[j - 2 - count], samples: 0, positives: 0)
                var task = Task(task: blank.task, before: blank, after: blank)
                try shifts[j - 2 - count].fill(&task)
                return .shift(task)
            }
        }
        guard case .evaluation(let evaluationA) = parts[0], case .evaluation(let evaluationB) = parts[1] else { preconditionFailure("jobs 0 and 1 evaluate") }
        let tasks = (0..<count).map { t -> Task in
            guard case .interval(let interval) = parts[2 + t], case .shift(var task) = parts[2 + count + t] else { preconditionFailure("a task's jobs") }
            let a = evaluationA.metrics[t], b = evaluationB.metrics[t]
            (task.before, task.after) = (a, b)
            (task.deltaAUC, task.deltaAUCLow, task.deltaAUCHigh) = (interval?.delta, interval?.low, interval?.high)
            task.deltaLogloss = a.logloss.flatMap { la in b.logloss.map { $0 - la } }
            task.deltaCalibration = a.calibration.flatMap { ca in b.calibration.map { $0 - ca } }
            (task.reliabilityBefore, task.reliabilityAfter) = (evaluationA.reliability[t], evaluationB.reliability[t])
            return task
        }
        return (tasks, evaluationA)
    }
}

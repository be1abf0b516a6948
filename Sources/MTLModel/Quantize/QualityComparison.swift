/// How two models score the same labelled samples: per task the metrics of each and a paired
/// confidence interval of the AUC difference.
public struct QualityComparison: Sendable, Codable {
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
    }

    public var sampleCount: Int
    public var skippedLineCount: Int
    public var tasks: [Task]

    /// Scores `data` with both models, batch by batch (each batch is read once).
    public static func compare(_ before: ModelFile, _ after: ModelFile, data: String, skipInvalid: Bool = false,
                               threadCount: Int = 1, batchSize: Int = 4096) throws -> QualityComparison {
        let predictorA = try Predictor(model: before, threadCount: threadCount)
        let predictorB = try Predictor(model: after, threadCount: threadCount)
        let names = before.architecture.tasks.map(\.name)
        var evaluatorA = Evaluator(taskNames: names), evaluatorB = Evaluator(taskNames: names)
        let reader = try DatasetReader(path: data, architecture: before.architecture, skipInvalid: skipInvalid)
        let batches = BatchPrefetcher(reader, taskCount: names.count, batchSize: batchSize)
        defer { batches.cancel() }
        while let batch = try batches.next() {
            evaluatorA.add(batch, predictorA.predict(batch))
            evaluatorB.add(batch, predictorB.predict(batch))
        }
        let metricsA = evaluatorA.metrics(), metricsB = evaluatorB.metrics()
        let tasks = names.indices.map { t -> Task in
            let paired = PairedAUC.compare(evaluatorA.logits(task: t).map(Double.init), evaluatorB.logits(task: t).map(Double.init),
                                           labels: evaluatorA.labels(task: t))
            let a = metricsA[t], b = metricsB[t]
            return Task(task: names[t], before: a, after: b, deltaAUC: paired?.delta, deltaAUCLow: paired?.low, deltaAUCHigh: paired?.high,
                        deltaLogloss: a.logloss.flatMap { la in b.logloss.map { $0 - la } },
                        deltaCalibration: a.calibration.flatMap { ca in b.calibration.map { $0 - ca } })
        }
        return QualityComparison(sampleCount: evaluatorA.sampleCount, skippedLineCount: reader.skippedLineCount, tasks: tasks)
    }
}

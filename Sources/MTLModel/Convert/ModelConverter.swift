import Foundation

/// What `convert` did: what was removed, added, folded and pruned, the frozen loss weighting,
/// and the sizes before and after.
public struct ConversionReport: Sendable, Codable {
    public struct Tensor: Sendable, Codable, Hashable {
        public var name: String
        public var dtype: DType
        public var shape: [UInt64]
        public var byteCount: UInt64
        /// The value a fresh tensor was filled with (added tensors only).
        public var initialValue: Double?
    }

    public struct FoldedBatchNorm: Sendable, Codable, Hashable {
        public var layer: String
        public var into: [String]
    }

    public struct PrunedTable: Sendable, Codable, Hashable {
        public var field: String
        public var rowsBefore: Int
        public var rowsAfter: Int
    }

    /// "serving" or "training".
    public var form: String
    public var removed: [Tensor] = []
    public var added: [Tensor] = []
    /// Training state carried over from the input (`--to training` on a training model).
    public var kept: [String] = []
    public var foldedBatchNorm: [FoldedBatchNorm] = []
    public var prunedTables: [PrunedTable] = []
    /// The architecture's loss section as written (nil when the model has none).
    public var loss: LossSection?
    public var optimizer: String?
    /// Tensors whose dtype changed (quantized, or decoded to float32 for training).
    public var quantized: [QuantizationReport.TensorChange] = []
    public var sections: [QuantizationReport.SectionSize] = []
    public var total = QuantizationReport.SectionSize(section: "total", byteCountBefore: 0, byteCountAfter: 0)

    public struct LossSection: Sendable, Codable, Hashable {
        public var weighting: String
        public var convention: String
        public var frozen: Bool
        public var values: [Double]
        public var weights: [Double]
    }
}

/// Converts a model between the training form (optimizer slots, step, row counts, learned loss
/// log-variances) and the serving form (`../shared/MODEL.md`, "Training state").
public struct ModelConverter {
    public struct ServingOptions: Sendable {
        /// Fold batch norm into the dense layers (`BatchNormFolding`).
        public var foldBatchNorm = false
        /// Remove the rows of keyed tables whose row count is 0 (needs `stats.{field}.count`).
        public var pruneUnseen = false
        /// Quantize as `quantize` does; nil keeps every dtype.
        public var quantization: QuantizationPlan?
        public init() {}
    }

    public var writerOptions: ModelWriter.Options
    /// The command recorded as the output's provenance source (default: a summary of it).
    public var source: String?
    /// Threads: windows of rows encoded at once when quantizing or decoding, the check of
    /// each tensor read, the writer's threads.
    public var threadCount: Int

    public init(writerOptions: ModelWriter.Options = .init(), threadCount: Int = 1) {
        self.writerOptions = writerOptions
        self.threadCount = max(1, threadCount)
    }

    /// Writes the serving form of `model` to `output` (atomically): no training state, the loss
    /// weighting frozen at the learned `loss.log_var` (with the weights it implies), and
    /// optionally batch norm folded, unseen keyed rows pruned and tables quantized. A sharded
    /// model gives a sharded model of the same shards (pruned shards hold fewer rows).
    public func toServing(_ model: Model, output: String, options: ServingOptions) throws -> ConversionReport {
        let pending = try PendingOutput(target: output)
        let report = try toServing(model, into: pending, options: options)
        try pending.commit()
        return report
    }

    /// `toServing` into `pending`, which the caller commits (after a gate) or drops.
    public func toServing(_ model: Model, into pending: PendingOutput, options: ServingOptions) throws -> ConversionReport {
        try servingJob(model, options: options).write(into: pending)
    }

    /// The rewrite `toServing` makes, file by file (`TaskPlan` runs it shard by shard).
    public func servingJob(_ model: Model, options: ServingOptions) throws -> RewriteJob<ConversionReport> {
        try options.quantization?.check(model.architecture)
        let (architecture, report, folding, pruning) = try servingForm(model, options: options)
        let removed = Set(folding?.removedTensors ?? [])
        let rewrite = ShardedRewrite(model: model, options: writerOptions.limited(to: threadCount), architecture: architecture,
                                     provenance: provenance(model, form: "serving"), parts: pruning?.parts) { [threadCount] file, writer in
            let rewriter = TensorRewriter(model: file, writer: writer, threadCount: threadCount)
            var changes: [QuantizationReport.TensorChange] = []
            for entry in file.tensors where !entry.role.isTrainingState && !removed.contains(entry.name) {
                let target = options.quantization?.target(for: entry) ?? entry.dtype
                if let values = folding?.values[entry.name] {
                    try rewriter.write(entry, values: values, as: target)
                } else if let change = try rewriter.write(entry, as: target, keeping: pruning?.filter(entry.name, in: file)) {
                    changes.append(change)
                }
            }
            return changes
        }
        var job = RewriteJob(rewrite: rewrite) { [report] outcome in
            Self.completed(report, quantized: outcome.changes, architecture: architecture, input: model, written: outcome.tensors)
        }
        job.steps = servingSteps(model, options: options)
        return job
    }

    /// The serving form's architecture (loss weighting frozen at the learned values, batch norm
    /// folded, tables pruned, as asked) and the report of what goes: folded and pruned tables,
    /// the training state and the folded layers' tensors.
    private func servingForm(_ model: Model, options: ServingOptions) throws
        -> (Architecture, ConversionReport, BatchNormFolding?, Pruning?) {
        let source = model.architecture
        var report = ConversionReport(form: "serving")
        var architecture = source

        var logVariances: [Double]?
        if let tensor = model.tensorIfPresent(.lossLogVar) { logVariances = try tensor.floats().map(Double.init) }
        if let section = source.loss ?? logVariances.map({ _ in Architecture.LossWeighting(weighting: "uncertainty") }) {
            architecture.loss = section.frozen(at: logVariances)
        }

        var folding: BatchNormFolding?
        if options.foldBatchNorm {
            let folded = try BatchNormFolding(architecture) { name in try model.tensor(name).floats() }
            architecture = folded.architecture
            report.foldedBatchNorm = folded.folds.map { .init(layer: $0.layer, into: $0.into) }
            folding = folded
        }

        let pruning = options.pruneUnseen ? try Pruning(model) : nil
        for (index, field) in source.fields.enumerated() {
            guard let kept = pruning?.keptCount[field.name] else { continue }
            architecture.fields[index].vocabSize = kept
            report.prunedTables.append(.init(field: field.name, rowsBefore: field.vocabSize, rowsAfter: kept))
        }

        let removed = Set(folding?.removedTensors ?? [])
        for entry in model.tensors where entry.role.isTrainingState || removed.contains(entry.name) {
            report.removed.append(.init(name: entry.name, dtype: entry.dtype, shape: entry.shape, byteCount: entry.byteCount))
        }
        return (architecture, report, folding, pruning)
    }

    /// The steps of `toServing` with `options`, each alone: folding, pruning, each table's
    /// quantization, the dense layers' (`StepAttribution`).
    private func servingSteps(_ model: Model, options: ServingOptions) -> [StepAttribution.Variant] {
        var steps: [(name: String, options: ServingOptions)] = []
        var alone = ServingOptions()
        if options.foldBatchNorm {
            alone.foldBatchNorm = true
            steps.append(("fold batch norm", alone))
        }
        if options.pruneUnseen {
            alone = ServingOptions()
            alone.pruneUnseen = true
            steps.append(("prune unseen rows", alone))
        }
        for step in options.quantization?.steps(for: model) ?? [] {
            alone = ServingOptions()
            alone.quantization = step.plan
            steps.append((step.name, alone))
        }
        return steps.map { step in
            StepAttribution.Variant(step.name) { pending in _ = try servingJob(model, options: step.options).write(into: pending) }
        }
    }

    /// Writes the training form of `model` to `output` (atomically), for warm starts: float32
    /// weights (dequantized), optimizer slots as `optimizer` initialises them (the model's own
    /// slots are kept when it has them for that optimizer), `loss.log_var` from the frozen
    /// values, and the loss weighting unfrozen. A sharded model gives a sharded model.
    ///
    /// - Parameter optimizer: nil uses the optimizer the architecture records.
    public func toTraining(_ model: Model, output: String, optimizer: Architecture.OptimizerType?) throws -> ConversionReport {
        let pending = try PendingOutput(target: output)
        let report = try toTraining(model, into: pending, optimizer: optimizer)
        try pending.commit()
        return report
    }

    /// `toTraining` into `pending`, which the caller commits (after a gate) or drops.
    public func toTraining(_ model: Model, into pending: PendingOutput, optimizer: Architecture.OptimizerType?) throws -> ConversionReport {
        try trainingJob(model, optimizer: optimizer).write(into: pending)
    }

    /// The rewrite `toTraining` makes, file by file (`TaskPlan` runs it shard by shard).
    public func trainingJob(_ model: Model, optimizer: Architecture.OptimizerType?) throws -> RewriteJob<ConversionReport> {
        let source = model.architecture
        guard let type = optimizer ?? source.optimizer?.type else {
            throw MTLModelError(.invalidArgument, "the model records no optimizer: name one (adagrad, adam, ftrl or sgd)", file: model.path)
        }
        var architecture = source
        if source.optimizer?.type != type {
            // Hyperparameters the new optimizer also has (lr, eps, ...) carry over.
            architecture.optimizer = Architecture.Optimizer(
                type: type, parameters: source.optimizer?.parameters.filter { type.parameterNames.contains($0.name) } ?? [])
        }
        architecture.loss?.frozen = false
        let state = Self.trainingState(model, architecture, keepSlots: source.optimizer?.type == type && model.has(.optimizerStep))
        let rewrite = ShardedRewrite(model: model, options: writerOptions.limited(to: threadCount), architecture: architecture,
                                     provenance: provenance(model, form: "training"), parts: nil) { [threadCount] file, writer in
            let rewriter = TensorRewriter(model: file, writer: writer, threadCount: threadCount)
            let local = { (spec: TensorSpec) in ModelStructure.localSpec(spec, in: file.manifest) }
            var changes: [QuantizationReport.TensorChange] = []
            for spec in source.servingTensors.compactMap(local) {
                let entry = file.entry(named: spec.name)!
                if let change = try rewriter.write(entry, as: QuantizationPlan.float32.target(for: entry) ?? entry.dtype) {
                    changes.append(change)
                }
            }
            for group in TrainingStateGroup.allCases {
                for spec in architecture.trainingTensors(group).compactMap(local) {
                    if state.kept.contains(spec.name) {
                        try rewriter.write(file.entry(named: spec.name)!, as: spec.dtype)
                    } else if state.fresh[spec.tensorName] != nil {
                        try Self.writeFresh(spec, group: group, architecture: architecture, taskCount: source.tasks.count, writer: writer)
                    }
                }
            }
            return changes
        }
        return RewriteJob(rewrite: rewrite) { [report = state.report] outcome in
            Self.completed(report, quantized: outcome.changes, architecture: architecture, input: model, written: outcome.tensors)
        }
    }

    /// What each training-state group becomes, decided for the whole model; each file then
    /// writes its own tensors of it (`ModelStructure.localSpec`).
    private static func trainingState(_ model: Model, _ architecture: Architecture, keepSlots: Bool)
        -> (kept: Set<String>, fresh: [TensorName: Double], report: ConversionReport) {
        var report = ConversionReport(form: "training")
        var fresh: [TensorName: Double] = [:]  // tensors made anew, with their value
        var kept = Set(model.architecture.servingTensors.map(\.name))
        for group in TrainingStateGroup.allCases {
            let specs = architecture.trainingTensors(group)
            if model.has(group) && (group == .optimizerSlots || group == .optimizerStep ? keepSlots : true) {
                kept.formUnion(specs.map(\.name))
                report.kept.append(group.rawValue)
                continue
            }
            for spec in specs {
                guard let value = initialValue(of: spec, group: group, architecture: architecture, taskCount: model.architecture.tasks.count) else { continue }
                fresh[spec.tensorName] = value
                report.added.append(.init(name: spec.name, dtype: spec.dtype, shape: spec.shape, byteCount: spec.dtype.storedByteCount(shape: spec.shape)!,
                                          initialValue: group == .lossLogVar ? nil : value))
            }
        }
        // What the input had and the output does not take over (slots of another optimizer, a step replaced by a fresh one).
        for entry in model.tensors where !kept.contains(entry.name) {
            report.removed.append(.init(name: entry.name, dtype: entry.dtype, shape: entry.shape, byteCount: entry.byteCount))
        }
        return (kept, fresh, report)
    }

    private func provenance(_ model: Model, form: String) -> Provenance {
        Provenance.derived(from: model.file, source: source ?? "convert \(model.path) --to \(form)")
    }

    /// The value a training-state tensor made anew starts at; nil for a tensor not made
    /// (counts cannot be made up: a warm start counts from its own data).
    private static func initialValue(of spec: TensorSpec, group: TrainingStateGroup, architecture: Architecture, taskCount: Int) -> Double? {
        switch group {
        case .optimizerSlots:
            guard case .optimizerSlot(_, let slot) = spec.tensorName else { return nil }
            return architecture.optimizer!.type.initialValue(ofSlot: slot, parameters: architecture.optimizer!)
        case .optimizerStep: return 0
        case .lossLogVar:
            guard let loss = architecture.loss, loss.weighting == "uncertainty" else { return nil }
            return 0
        case .rowCounts: return nil
        }
    }

    /// Writes a training-state tensor made anew, of `spec`'s (local) shape.
    private static func writeFresh(_ spec: TensorSpec, group: TrainingStateGroup, architecture: Architecture, taskCount: Int, writer: ModelWriter) throws {
        switch group {
        case .optimizerSlots:
            guard case .optimizerSlot(_, let slot) = spec.tensorName else { return }
            try fill(spec, with: Float(architecture.optimizer!.type.initialValue(ofSlot: slot, parameters: architecture.optimizer!)), writer: writer)
        case .optimizerStep:
            try write(spec, [Int64(0)], writer: writer)
        case .lossLogVar:
            // Learned log-variances start where they were frozen (0, a weight of 1, when no values were recorded).
            let values = architecture.loss!.values.isEmpty ? Array(repeating: 0.0, count: taskCount) : architecture.loss!.values
            try write(spec, values.map { Float($0) }, writer: writer)
        case .rowCounts:
            return
        }
    }

    /// Which rows of the keyed tables training saw (row count > 0), part by part: the filter
    /// of each table tensor in each file, the rows kept in all, and the parts of a pruned
    /// sharded model (each shard keeps its seen rows: same buckets, fewer rows).
    struct Pruning {
        let keptCount: [String: Int]
        private let filters: [ObjectIdentifier: [String: RowFilter]]
        private let keptPerShard: [String: [Int]]
        private let inputParts: [[TablePart]]

        init(_ model: Model) throws {
            var keptCount: [String: Int] = [:], filters: [ObjectIdentifier: [String: RowFilter]] = [:], perShard: [String: [Int]] = [:]
            for field in model.architecture.fields where field.mapping == .keyed {
                let name = TensorName.rowCount(field.name).description
                guard let counts = model.tensorIfPresent(.rowCount(field.name)) else {
                    throw MTLModelError(.invalidArgument, "pruning unseen rows needs row counts (\(name)); this model has none", file: model.path)
                }
                for part in counts.parts {
                    let filter = try ModelConverter.seenRows(part.tensor)
                    for tensor in [TensorName.embedding(field.name), .keys(field.name), .linear(field.name)] {
                        filters[ObjectIdentifier(part.tensor.file), default: [:]][tensor.description] = filter
                    }
                    perShard[field.name, default: []].append(filter.keptCount)
                }
                keptCount[field.name] = perShard[field.name]!.reduce(0, +)
                guard keptCount[field.name]! > 0 else {
                    throw MTLModelError(.invalidArgument, "no row of keyed field \"\(field.name)\" was seen in training: pruning would leave an empty table",
                                        file: model.path, location: .init(tensor: name))
                }
            }
            self.keptCount = keptCount
            self.filters = filters
            keptPerShard = perShard
            inputParts = model.shards.map { $0.manifest.shard!.parts }
        }

        /// The filter of tensor `name` in `file`, when it is a pruned table's.
        func filter(_ name: String, in file: ModelFile) -> RowFilter? { filters[ObjectIdentifier(file)]?[name] }

        /// The parts of pruned shard `shard` (0-based): kept rows, numbered on from the shards before.
        func parts(_ shard: Int) -> [TablePart] {
            inputParts[shard].map { part in
                guard let kept = keptPerShard[part.field] else { return part }
                var pruned = part
                pruned.firstRow = UInt64(kept[..<shard].reduce(0, +))
                pruned.rowCount = UInt64(kept[shard])
                return pruned
            }
        }
    }

    /// The rows of a row-count tensor that training saw (count > 0), as a bitmap (1 bit a row).
    fileprivate static func seenRows(_ counts: ModelTensor) throws -> RowFilter {
        var bits = [UInt64](repeating: 0, count: (counts.rowCount + 63) / 64)
        var kept = 0
        try counts.withElements(as: Int64.self) { values in
            // Released behind, 8 MiB at a time: a table of a billion rows has 8 GB of counts.
            let step = 1 << 20
            for start in stride(from: 0, to: values.count, by: step) {
                let rows = start..<min(start + step, values.count)
                for row in rows where values[row] > 0 {
                    bits[row >> 6] |= 1 << UInt64(row & 63)
                    kept += 1
                }
                counts.releasePages(rows: rows)
            }
        }
        let seen = bits
        return RowFilter(keptCount: kept) { row in seen[row >> 6] & (1 << UInt64(row & 63)) != 0 }
    }

    private static func write<T: BitwiseCopyable>(_ spec: TensorSpec, _ elements: [T], writer: ModelWriter) throws {
        try writer.beginTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role)
        try writer.write(elements[...])
        try writer.endTensor()
    }

    /// Writes a float32 tensor of `spec`'s shape holding `value` everywhere, 1 MiB at a time.
    private static func fill(_ spec: TensorSpec, with value: Float, writer: ModelWriter) throws {
        let buffer = [Float](repeating: value, count: 1 << 18)
        try writer.beginTensor(spec.name, dtype: .float32, shape: spec.shape, role: spec.role)
        var left = Int(spec.elementCount)
        while left > 0 {
            let count = min(left, buffer.count)
            try writer.write(buffer[..<count])
            left -= count
        }
        try writer.endTensor()
    }

    /// Fills in the report's loss section and sizes by section, from what was written.
    private static func completed(_ report: ConversionReport, quantized: [QuantizationReport.TensorChange], architecture: Architecture,
                                  input: Model, written: [TensorEntry]) -> ConversionReport {
        var report = report
        report.quantized = quantized
        if let loss = architecture.loss {
            report.loss = .init(weighting: loss.weighting, convention: loss.convention, frozen: loss.frozen, values: loss.values, weights: loss.weights)
        }
        report.optimizer = architecture.optimizer?.type.configName
        (report.sections, report.total) = QuantizationReport.SectionSize.bySection(before: input.tensors, after: written)
        return report
    }
}

extension Architecture.OptimizerType {
    /// The value a fresh slot starts at, as each optimizer defines it: Adagrad's `sum` at
    /// `initial_accumulator` (PyTorch's default 0), Adam's moments at 0, FTRL's `z` at 0 and
    /// `n` at `initial_accumulator` (TensorFlow's default 0.1).
    func initialValue(ofSlot slot: String, parameters optimizer: Architecture.Optimizer) -> Double {
        switch (self, slot) {
        case (.adagrad, "sum"): optimizer.parameter("initial_accumulator") ?? 0
        case (.ftrl, "n"): optimizer.parameter("initial_accumulator") ?? 0.1
        default: 0
        }
    }
}

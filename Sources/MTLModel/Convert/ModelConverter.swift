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
    /// Windows of rows encoded at once when quantizing or decoding.
    public var threadCount: Int

    public init(writerOptions: ModelWriter.Options = .init(), threadCount: Int = 1) {
        self.writerOptions = writerOptions
        self.threadCount = max(1, threadCount)
    }

    /// Writes the serving form of `model` to `output` (atomically): no training state, the loss
    /// weighting frozen at the learned `loss.log_var` (with the weights it implies), and
    /// optionally batch norm folded, unseen keyed rows pruned and tables quantized.
    public func toServing(_ model: Model, output: String, options: ServingOptions) throws -> ConversionReport {
        try model.requireOneFile(for: "convert")
        try options.quantization?.check(model.architecture)
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

        var filters: [String: RowFilter] = [:]
        if options.pruneUnseen {
            for (index, field) in source.fields.enumerated() where field.mapping == .keyed {
                let filter = try Self.seenRows(of: field, in: model)
                architecture.fields[index].vocabSize = filter.keptCount
                report.prunedTables.append(.init(field: field.name, rowsBefore: field.vocabSize, rowsAfter: filter.keptCount))
                for name in [TensorName.embedding(field.name), .keys(field.name), .linear(field.name)] {
                    filters[name.description] = filter
                }
            }
        }

        let writer = try ModelWriter(path: output, options: writerOptions)
        let rewriter = TensorRewriter(model: model.file, writer: writer, threadCount: threadCount)
        let removed = Set(folding?.removedTensors ?? [])
        for entry in model.tensors {
            guard !entry.role.isTrainingState, !removed.contains(entry.name) else {
                report.removed.append(.init(name: entry.name, dtype: entry.dtype, shape: entry.shape, byteCount: entry.byteCount))
                continue
            }
            let target = options.quantization?.target(for: entry) ?? entry.dtype
            if let values = folding?.values[entry.name] {
                try rewriter.write(entry, values: values, as: target)
            } else if let change = try rewriter.write(entry, as: target, keeping: filters[entry.name]) {
                report.quantized.append(change)
            }
        }
        let written = try finish(writer, architecture: architecture, model: model, form: "serving")
        return Self.completed(report, architecture: architecture, input: model, written: written)
    }

    /// Writes the training form of `model` to `output` (atomically), for warm starts: float32
    /// weights (dequantized), optimizer slots as `optimizer` initialises them (the model's own
    /// slots are kept when it has them for that optimizer), `loss.log_var` from the frozen
    /// values, and the loss weighting unfrozen.
    ///
    /// - Parameter optimizer: nil uses the optimizer the architecture records.
    public func toTraining(_ model: Model, output: String, optimizer: Architecture.OptimizerType?) throws -> ConversionReport {
        try model.requireOneFile(for: "convert")
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
        var report = ConversionReport(form: "training")

        let writer = try ModelWriter(path: output, options: writerOptions)
        let rewriter = TensorRewriter(model: model.file, writer: writer, threadCount: threadCount)
        var copied = Set(source.servingTensors.map(\.name))
        for spec in source.servingTensors {
            let entry = model.tensor(spec.tensorName).entry
            if let change = try rewriter.write(entry, as: QuantizationPlan.float32.target(for: entry) ?? entry.dtype) {
                report.quantized.append(change)
            }
        }
        let keepSlots = source.optimizer?.type == type && model.has(.optimizerStep)
        for group in TrainingStateGroup.allCases {
            let specs = architecture.trainingTensors(group)
            let present = model.has(group)
            let keep = present && (group == .optimizerSlots || group == .optimizerStep ? keepSlots : true)
            if keep {
                for spec in specs {
                    try rewriter.write(model.tensor(spec.tensorName).entry, as: spec.dtype)
                    copied.insert(spec.name)
                }
                report.kept.append(group.rawValue)
                continue
            }
            for spec in specs {
                switch group {
                case .optimizerSlots:
                    guard case .optimizerSlot(_, let slot) = spec.tensorName else { continue }
                    let value = type.initialValue(ofSlot: slot, parameters: architecture.optimizer!)
                    try Self.fill(spec, with: Float(value), writer: writer)
                    report.added.append(.init(name: spec.name, dtype: spec.dtype, shape: spec.shape, byteCount: spec.dtype.storedByteCount(shape: spec.shape)!, initialValue: value))
                case .optimizerStep:
                    try Self.write(spec, [Int64(0)], writer: writer)
                    report.added.append(.init(name: spec.name, dtype: spec.dtype, shape: spec.shape, byteCount: 8, initialValue: 0))
                case .lossLogVar:
                    // Learned log-variances start where they were frozen (0, a weight of 1, when no values were recorded).
                    guard let loss = architecture.loss, loss.weighting == "uncertainty" else { continue }
                    let values = loss.values.isEmpty ? Array(repeating: 0.0, count: source.tasks.count) : loss.values
                    try Self.write(spec, values.map { Float($0) }, writer: writer)
                    report.added.append(.init(name: spec.name, dtype: spec.dtype, shape: spec.shape, byteCount: UInt64(4 * values.count)))
                case .rowCounts:
                    // Counts cannot be made up: a warm start counts from its own data.
                    continue
                }
            }
        }
        // What the input had and the output does not take over (slots of another optimizer, a step replaced by a fresh one).
        for entry in model.tensors where !copied.contains(entry.name) {
            report.removed.append(.init(name: entry.name, dtype: entry.dtype, shape: entry.shape, byteCount: entry.byteCount))
        }
        let written = try finish(writer, architecture: architecture, model: model, form: "training")
        return Self.completed(report, architecture: architecture, input: model, written: written)
    }

    private func finish(_ writer: ModelWriter, architecture: Architecture, model: Model, form: String) throws -> ModelWriter.Written {
        try writer.finish(architecture: architecture,
                          provenance: Provenance(createdUnixSeconds: Int64(Date().timeIntervalSince1970), source: "convert \(model.path) --to \(form)"),
                          metadata: model.manifest.metadata)
    }

    /// The rows of `field`'s table that training saw (row count > 0), as a bitmap (1 bit a row).
    private static func seenRows(of field: Architecture.Field, in model: Model) throws -> RowFilter {
        let name = TensorName.rowCount(field.name).description
        guard let counts = model.tensorIfPresent(.rowCount(field.name)) else {
            throw MTLModelError(.invalidArgument, "pruning unseen rows needs row counts (\(name)); this model has none", file: model.path)
        }
        var bits = [UInt64](repeating: 0, count: (field.vocabSize + 63) / 64)
        var kept = 0
        try counts.withElements(as: Int64.self) { counts in
            for (row, count) in counts.enumerated() where count > 0 {
                bits[row >> 6] |= 1 << UInt64(row & 63)
                kept += 1
            }
        }
        guard kept > 0 else {
            throw MTLModelError(.invalidArgument, "no row of keyed field \"\(field.name)\" was seen in training: pruning would leave an empty table",
                                file: model.path, location: .init(tensor: name))
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
    private static func completed(_ report: ConversionReport, architecture: Architecture, input: Model, written: ModelWriter.Written) -> ConversionReport {
        var report = report
        if let loss = architecture.loss {
            report.loss = .init(weighting: loss.weighting, convention: loss.convention, frozen: loss.frozen, values: loss.values, weights: loss.weights)
        }
        report.optimizer = architecture.optimizer?.type.configName
        (report.sections, report.total) = QuantizationReport.SectionSize.bySection(before: input.tensors, after: written.tensors)
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

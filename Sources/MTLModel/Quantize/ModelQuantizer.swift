import CKernels
import Foundation

/// What quantizing did to a model: sizes before and after, the reconstruction error of each
/// changed tensor, and (with evaluation data) what it did to predictions.
public struct QuantizationReport: Sendable, Codable {
    public struct TensorChange: Sendable, Codable, Hashable {
        public var name: String
        public var dtypeBefore: DType
        public var dtypeAfter: DType
        public var byteCountBefore: UInt64
        public var byteCountAfter: UInt64
        public var rowCount: Int
        /// Per row ‖x − x̂‖ / ‖x‖ (0 for a zero row, which stays zero): mean and max over rows.
        public var meanRelativeError: Double
        public var maxRelativeError: Double

        /// The change of a whole tensor from the changes of its parts (a sharded table's, one
        /// per shard): sizes and rows added up, the mean weighted by rows, the largest maximum.
        static func merged(_ parts: [TensorChange]) -> TensorChange {
            var whole = parts[0]
            guard parts.count > 1 else { return whole }
            whole.byteCountBefore = parts.reduce(0) { $0 + $1.byteCountBefore }
            whole.byteCountAfter = parts.reduce(0) { $0 + $1.byteCountAfter }
            whole.rowCount = parts.reduce(0) { $0 + $1.rowCount }
            let weighted = parts.reduce(0.0) { $0 + $1.meanRelativeError * Double($1.rowCount) }
            whole.meanRelativeError = whole.rowCount == 0 ? 0 : weighted / Double(whole.rowCount)
            whole.maxRelativeError = parts.map(\.maxRelativeError).max() ?? 0
            return whole
        }
    }

    public struct SectionSize: Sendable, Codable, Hashable {
        public var section: String
        public var byteCountBefore: UInt64
        public var byteCountAfter: UInt64
        public var ratio: Double { byteCountBefore == 0 ? 1 : Double(byteCountAfter) / Double(byteCountBefore) }

        enum CodingKeys: String, CodingKey { case section, byteCountBefore, byteCountAfter, ratio }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(section, forKey: .section)
            try container.encode(byteCountBefore, forKey: .byteCountBefore)
            try container.encode(byteCountAfter, forKey: .byteCountAfter)
            try container.encode(ratio, forKey: .ratio)
        }

        public init(section: String, byteCountBefore: UInt64, byteCountAfter: UInt64) {
            self.section = section
            self.byteCountBefore = byteCountBefore
            self.byteCountAfter = byteCountAfter
        }

        /// Bytes by section (and in total) of a model's tensors before and after a rewrite.
        static func bySection(before: [TensorEntry], after: [TensorEntry]) -> (sections: [SectionSize], total: SectionSize) {
            var sizes: [ModelSection: (UInt64, UInt64)] = [:]
            for entry in before { sizes[ModelSummary.section(of: entry), default: (0, 0)].0 += entry.byteCount }
            for entry in after { sizes[ModelSummary.section(of: entry), default: (0, 0)].1 += entry.byteCount }
            let sections = ModelSection.allCases.compactMap { section in
                sizes[section].map { SectionSize(section: section.rawValue, byteCountBefore: $0.0, byteCountAfter: $0.1) }
            }
            return (sections, SectionSize(section: "total", byteCountBefore: sections.reduce(0) { $0 + $1.byteCountBefore },
                                          byteCountAfter: sections.reduce(0) { $0 + $1.byteCountAfter }))
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            section = try container.decode(String.self, forKey: .section)
            byteCountBefore = try container.decode(UInt64.self, forKey: .byteCountBefore)
            byteCountAfter = try container.decode(UInt64.self, forKey: .byteCountAfter)
        }
    }

    public var tensors: [TensorChange] = []
    public var sections: [SectionSize] = []
    public var total = SectionSize(section: "total", byteCountBefore: 0, byteCountAfter: 0)
    public var evaluation: QualityComparison?
}

/// Rewrites a model with other dtypes for its tables and dense weights (`QuantizationPlan`),
/// streaming row windows in bounded memory.
public struct ModelQuantizer {
    public var plan: QuantizationPlan
    public var writerOptions: ModelWriter.Options
    /// Threads: windows of rows encoded and written at once, the check of each tensor read,
    /// the writer's threads (`ModelWriter.Options.limited(to:)`).
    public var threadCount: Int

    public init(plan: QuantizationPlan, writerOptions: ModelWriter.Options = .init(), threadCount: Int = 1) {
        self.plan = plan
        self.writerOptions = writerOptions
        self.threadCount = max(1, threadCount)
    }

    /// Writes the quantized copy of `model` to `output` (atomically; a sharded model as
    /// shards of the same rows and a root).
    ///
    /// - Throws: on NaN or Inf in a tensor being quantized (naming the tensor and row), on a
    ///   value beyond float16's range where float16 is needed, or on I/O errors.
    public func quantize(_ checked: Model, to output: String, source: String) throws -> QuantizationReport {
        let pending = try PendingOutput(target: output)
        let report = try quantize(checked, into: pending, source: source)
        try pending.commit()
        return report
    }

    /// Writes the quantized copy of `model` into `pending`, which the caller commits (after a
    /// gate) or drops.
    public func quantize(_ checked: Model, into pending: PendingOutput, source: String) throws -> QuantizationReport {
        try job(checked, source: source).write(into: pending)
    }

    /// The rewrite `quantize` makes, file by file (`TaskPlan` runs it shard by shard).
    public func job(_ checked: Model, source: String) throws -> RewriteJob<QuantizationReport> {
        try plan.check(checked.architecture)
        let provenance = Provenance.derived(from: checked.file, source: source)
        let rewrite = ShardedRewrite(model: checked, options: writerOptions.limited(to: threadCount), architecture: checked.architecture,
                                     provenance: provenance, parts: nil) { [plan, threadCount] file, writer in
            let rewriter = TensorRewriter(model: file, writer: writer, threadCount: threadCount)
            return try file.tensors.compactMap { try rewriter.write($0, as: plan.target(for: $0) ?? $0.dtype) }
        }
        var job = RewriteJob(rewrite: rewrite) { outcome in
            var report = QuantizationReport()
            report.tensors = outcome.changes
            (report.sections, report.total) = QuantizationReport.SectionSize.bySection(before: checked.tensors, after: outcome.tensors)
            return report
        }
        job.steps = plan.steps(for: checked).map { step in
            var alone = self
            alone.plan = step.plan
            return StepAttribution.Variant(step.name) { pending in _ = try alone.job(checked, source: source).write(into: pending) }
        }
        return job
    }
}

extension ModelQuantizer {
    /// Quantizes rows of `columns` float32 values to the INT8_ROWWISE layout: the kernel of
    /// `quantize` for embedding tables (AVX-512 or AVX2 when the CPU has it).
    ///
    /// - Returns: the index of the first row holding NaN or Inf, or nil.
    public static func quantizeInt8Rows(_ values: UnsafeBufferPointer<Float>, columns: Int,
                                        into output: UnsafeMutableRawBufferPointer) -> Int? {
        let rows = values.count / columns
        precondition(output.count >= rows * (columns + 8))
        var sum = 0.0, worst = 0.0
        let bad = mtlm_quantize_int8_rowwise(values.baseAddress!, rows, columns,
                                             output.baseAddress!.assumingMemoryBound(to: UInt8.self), &sum, &worst)
        return bad >= 0 ? bad : nil
    }
}

extension ModelQuantizer {
    /// Quantizes rows of `columns` finite float32 values to the INT4_ROWWISE layout over the
    /// clipping range `quantize` searches: its kernel for embedding tables (16 rows at once with
    /// AVX-512 where the CPU has it). The library benchmarks time it.
    ///
    /// - Returns: the index of the first row beyond float16's range, or nil.
    public static func quantizeInt4Rows(_ values: UnsafeBufferPointer<Float>, columns: Int,
                                        into output: UnsafeMutableRawBufferPointer) -> Int? {
        let rows = values.count / columns, rowBytes = (columns + 1) / 2 + 4
        precondition(output.count >= rows * rowBytes)
        let bad = mtlm_encode_int4_rows(values.baseAddress!, rows, columns, output.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                        rowBytes, 1, Int32(MTLM_INT4_BEST), nil)
        return bad >= 0 ? bad : nil
    }
}

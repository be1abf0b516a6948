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
    /// Windows of rows encoded at once (one writer thread writes them in order).
    public var threadCount: Int

    public init(plan: QuantizationPlan, writerOptions: ModelWriter.Options = .init(), threadCount: Int = 1) {
        self.plan = plan
        self.writerOptions = writerOptions
        self.threadCount = max(1, threadCount)
    }

    /// Writes the quantized copy of `model` to `output` (atomically).
    ///
    /// - Throws: on NaN or Inf in a tensor being quantized (naming the tensor and row), on a
    ///   value beyond float16's range where float16 is needed, or on I/O errors.
    public func quantize(_ checked: Model, to output: String, source: String) throws -> QuantizationReport {
        try checked.requireOneFile(for: "quantize")
        let model = checked.file
        try plan.check(model.architecture)
        var report = QuantizationReport()
        let writer = try ModelWriter(path: output, options: writerOptions)
        let rewriter = TensorRewriter(model: model, writer: writer, threadCount: threadCount)
        for entry in model.tensors {
            if let change = try rewriter.write(entry, as: plan.target(for: entry) ?? entry.dtype) { report.tensors.append(change) }
        }
        let written = try writer.finish(architecture: model.architecture,
                          provenance: Provenance(createdUnixSeconds: Int64(Date().timeIntervalSince1970), source: source),
                          metadata: model.manifest.metadata)
        (report.sections, report.total) = QuantizationReport.SectionSize.bySection(before: model.tensors, after: written.tensors)
        return report
    }
}

extension ModelQuantizer {
    /// Quantizes rows of `columns` float32 values to the INT8_ROWWISE layout: the kernel of
    /// `quantize` for embedding tables (AVX2 when the CPU has it).
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

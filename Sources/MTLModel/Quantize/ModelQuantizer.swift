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

    public init(plan: QuantizationPlan, writerOptions: ModelWriter.Options = .init()) {
        self.plan = plan
        self.writerOptions = writerOptions
    }

    /// Rows encoded per window: bounds the memory of the float and encoded buffers.
    static let windowRowCount = 16_384

    /// Writes the quantized copy of `model` to `output` (atomically).
    ///
    /// - Throws: on NaN or Inf in a tensor being quantized (naming the tensor and row), on a
    ///   value beyond float16's range where float16 is needed, or on I/O errors.
    public func quantize(_ model: ModelFile, to output: String, source: String) throws -> QuantizationReport {
        try model.requireModel()
        for name in plan.fields.keys where !model.architecture.fields.contains(where: { $0.name == name }) {
            throw MTLModelError(.invalidArgument, "no field named \"\(name)\" (fields: \(model.architecture.fields.map(\.name).joined(separator: ", ")))")
        }
        var report = QuantizationReport()
        var sizes: [String: (UInt64, UInt64)] = [:]
        let writer = try ModelWriter(path: output, options: writerOptions)
        for entry in model.tensors {
            let section = ModelSummary.section(of: entry).rawValue
            var after = entry.byteCount
            if let target = plan.target(for: entry), target != entry.dtype {
                let change = try convert(entry, to: target, model: model, writer: writer)
                report.tensors.append(change)
                after = change.byteCountAfter
            } else {
                try writer.beginTensor(entry.name, dtype: entry.dtype, shape: entry.shape, role: entry.role)
                try model.visitChunks(of: entry, checkingChecksums: true) { visit in
                    guard let chunk = visit.logical else { throw model.chunkError(visit, of: entry) }
                    try writer.write(chunk)
                }
                try writer.endTensor()
            }
            sizes[section, default: (0, 0)].0 += entry.byteCount
            sizes[section, default: (0, 0)].1 += after
        }
        report.sections = ModelSection.allCases.compactMap { section in
            sizes[section.rawValue].map { QuantizationReport.SectionSize(section: section.rawValue, byteCountBefore: $0.0, byteCountAfter: $0.1) }
        }
        report.total = QuantizationReport.SectionSize(section: "total", byteCountBefore: report.sections.reduce(0) { $0 + $1.byteCountBefore },
                                                      byteCountAfter: report.sections.reduce(0) { $0 + $1.byteCountAfter })
        try writer.finish(architecture: model.architecture,
                          provenance: Provenance(createdUnixSeconds: Int64(Date().timeIntervalSince1970), source: source),
                          metadata: model.manifest.metadata)
        return report
    }

    /// Decodes `entry` window by window, encodes it as `target`, and measures the error.
    private func convert(_ entry: TensorEntry, to target: DType, model: ModelFile, writer: ModelWriter) throws -> QuantizationReport.TensorChange {
        let columns = entry.columnCount
        let rows = columns == 0 ? 0 : Int(entry.elementCount) / columns
        let sourceRowBytes = Int(entry.dtype.rowByteCount(columns: UInt64(columns)))
        let targetRowBytes = Int(target.rowByteCount(columns: UInt64(columns)))
        let shape = entry.shape.isEmpty ? [1] : entry.shape
        guard target.storedByteCount(shape: shape) != nil else {
            throw MTLModelError(.invalidArgument, "shape \(entry.shape) cannot be stored as \(target)", file: model.path, location: .init(tensor: entry.name))
        }
        try writer.beginTensor(entry.name, dtype: target, shape: entry.shape, role: entry.role)
        let window = Self.windowRowCount
        var values = [Float](repeating: 0, count: window * columns)
        var encoded = [UInt8](repeating: 0, count: window * targetRowBytes)
        var decoded = [Float](repeating: 0, count: columns)
        var errorSum = 0.0, errorMax = 0.0
        try model.withTensorBytes(entry.name) { stored in
            var start = 0
            while start < rows {
                let count = min(window, rows - start)
                if entry.dtype == .float32 && target == .int8Rowwise {
                    // The hot path (gigabytes of embedding tables): a C loop over the mapped rows.
                    let bad = encoded.withUnsafeMutableBufferPointer { out in
                        mtlm_quantize_int8_rowwise((stored.baseAddress! + start * sourceRowBytes).assumingMemoryBound(to: Float.self),
                                                   count, columns, out.baseAddress!, &errorSum, &errorMax)
                    }
                    if bad >= 0 {
                        throw MTLModelError(.invalidArgument, "row \(start + bad) holds NaN or Inf: cannot quantize it",
                                            file: model.path, location: .init(tensor: entry.name))
                    }
                    try withBytes(of: encoded) { raw throws(MTLModelError) in try writer.write(UnsafeRawBufferPointer(rebasing: raw[..<(count * targetRowBytes)])) }
                    model.file.release(entry.offset + UInt64(start * sourceRowBytes), UInt64(count * sourceRowBytes))
                    start += count
                    continue
                }
                try values.withUnsafeMutableBufferPointer { floats in
                    try encoded.withUnsafeMutableBytes { out in
                        try decoded.withUnsafeMutableBufferPointer { check in
                            for r in 0..<count {
                                let x = floats.baseAddress! + r * columns
                                RowCodec.decodeRow(stored.baseAddress! + (start + r) * sourceRowBytes, dtype: entry.dtype, columns: columns, into: x)
                                for j in 0..<columns where !x[j].isFinite {
                                    throw MTLModelError(.invalidArgument, "row \(start + r) holds \(x[j]) at column \(j): cannot quantize NaN or Inf",
                                                        file: model.path, location: .init(tensor: entry.name))
                                }
                                let row = out.baseAddress! + r * targetRowBytes
                                do {
                                    try RowQuantizer.encode(x, columns: columns, as: target, into: row)
                                } catch {
                                    throw MTLModelError(.invalidArgument, "row \(start + r) has values beyond float16's range (±65504), which \(target) cannot hold; use int8 or bf16 for it",
                                                        file: model.path, location: .init(tensor: entry.name))
                                }
                                RowCodec.decodeRow(UnsafeRawPointer(row), dtype: target, columns: columns, into: check.baseAddress!)
                                var difference = 0.0, norm = 0.0
                                for j in 0..<columns {
                                    let d = Double(check[j]) - Double(x[j])
                                    difference += d * d
                                    norm += Double(x[j]) * Double(x[j])
                                }
                                let relative = norm == 0 ? (difference == 0 ? 0 : Double.infinity) : (difference / norm).squareRoot()
                                errorSum += relative
                                errorMax = max(errorMax, relative)
                            }
                            try writer.write(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(out)[..<(count * targetRowBytes)]))
                        }
                    }
                }
                model.file.release(entry.offset + UInt64(start * sourceRowBytes), UInt64(count * sourceRowBytes))
                start += count
            }
        }
        try writer.endTensor()
        return .init(name: entry.name, dtypeBefore: entry.dtype, dtypeAfter: target, byteCountBefore: entry.byteCount,
                     byteCountAfter: target.storedByteCount(shape: shape)!, rowCount: rows,
                     meanRelativeError: rows == 0 ? 0 : errorSum / Double(rows), maxRelativeError: errorMax)
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

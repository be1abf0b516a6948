import MTLModel

/// `inspect --html`: provenance and metadata, the architecture as a diagram and in words,
/// parameters and bytes by section (and per tensor with `--tensors`).
enum InspectReport {
    static func make(_ summary: ModelSummary, architecture: Architecture) -> HTMLReport {
        var report = HTMLReport(title: "Model \(summary.file.split(separator: "/").last.map(String.init) ?? summary.file)",
                                subtitle: "\(summary.file): format \(summary.formatVersion), \(Format.bytes(summary.fileByteCount)), "
                                    + "\(summary.parameterCount) parameters in \(summary.tensorCount) tensors")
        report.table(["producer", "created", "source"], [["\(summary.producer) \(summary.producerVersion)", summary.created, summary.source]])
        if let lineage = summary.lineage {
            report.heading("Lineage")
            report.table(["derived from (nearest first)", "content hash", "created"], lineage.map { [$0.source, $0.contentHash, $0.created] })
        }
        if !summary.metadata.isEmpty {
            report.heading("Metadata")
            report.table(["key", "value"], summary.metadata.map { [$0.key, $0.value] })
        }
        report.heading("Architecture")
        report.charts([.architecture(architecture)])
        for line in architecture.descriptionLines { report.paragraph(line) }
        report.heading("Sizes by section")
        report.charts([.bars(title: "Bytes by section", labels: summary.sections.map(\.section.rawValue),
                             series: [("bytes", summary.sections.map { Double($0.byteCount) })], format: { Format.bytes(UInt64(max(0, $0))) })])
        report.table(["section", "tensors", "parameters", "bytes"], summary.sections.map {
            [$0.section.rawValue, "\($0.tensorCount)", "\($0.parameterCount)", Format.bytes($0.byteCount)]
        })
        if let shards = summary.shards {
            report.heading("Shards")
            report.table(["file", "bytes"], shards.map { [$0.file, Format.bytes($0.byteCount)] })
        }
        if let tensors = summary.tensors {
            report.heading("Tensors")
            report.table(["tensor", "dtype", "shape", "role", "bytes"], tensors.map {
                [$0.name, $0.dtype.description, "[" + $0.shape.map(String.init).joined(separator: ", ") + "]", "\($0.role)", Format.bytes($0.byteCount)]
            })
        }
        return report
    }
}

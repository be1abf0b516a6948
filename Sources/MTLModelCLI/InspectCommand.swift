import ArgumentParser
import MTLModel

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a model's format, provenance, metadata, architecture and sizes.",
        discussion: "Reads only the manifest unless --stats is given.\n\nExamples:\n  mtl-model inspect model.mtlm --tensors --html model.html"
    )

    @Argument(help: "The .mtlm file.")
    var model: String

    @Flag(help: "List every tensor: name, dtype, shape, bytes, offset, compression.")
    var tensors = false

    @Flag(help: "Per-tensor min, max, mean, std, fraction of zeros, NaN and Inf counts (reads all weights).")
    var stats = false

    @Flag(help: "A sharded model's root: list its shards (file, bytes, rows of each field). Reads the root only.")
    var shards = false

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @Option(help: "Also write the report as one self-contained HTML file: the architecture as a diagram, sizes by section.")
    var html: String?

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    func run() throws {
        let file = try limits.open(model)
        // Statistics read every value: of a model, only once it is known to be one (a delta's
        // patches have no architecture of their own to check).
        let checked = stats && file.manifest.delta == nil ? try Model(file, options: limits.modelOptions) : nil
        let summary = try ModelSummary(file, includeTensors: tensors, statistics: stats, checked: checked)
        if let html { try InspectReport.make(summary, architecture: file.architecture).write(to: html) }
        if json {
            try Terminal.json(InspectOutput(summary: summary))
            return
        }
        Terminal.output(render(summary, architecture: file.architecture))
    }

    struct InspectOutput: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var summary: ModelSummary

        func encode(to encoder: any Encoder) throws {
            // One flat document: schemaVersion beside the summary's keys.
            try summary.encode(to: encoder)
            var container = encoder.container(keyedBy: Key.self)
            try container.encode(schemaVersion, forKey: .schemaVersion)
        }

        enum Key: String, CodingKey { case schemaVersion }
    }

    private func render(_ summary: ModelSummary, architecture: Architecture) -> String {
        var lines = Self.provenanceLines(summary)
        lines.append("")
        lines.append("architecture")
        lines += architecture.descriptionLines.map { "  " + $0 }
        lines.append("")
        let sectionRows = summary.sections.map { section in
            [section.section.rawValue, "\(section.tensorCount)", "\(section.parameterCount)", Format.bytes(section.byteCount)]
        }
        lines.append(Format.table(["section", "tensors", "parameters", "bytes"], sectionRows))
        lines.append("total model parameters \(summary.parameterCount) in \(summary.tensorCount) tensors")
        if let list = summary.shards { lines += shardLines(list, summary, architecture) }
        if let rows = summary.tensors { lines += ["", tensorTable(rows)] }
        return lines.joined(separator: "\n")
    }

    /// File, format, producer, lineage, form and metadata.
    private static func provenanceLines(_ summary: ModelSummary) -> [String] {
        let e = TerminalText.escaped
        var lines: [String] = []
        lines.append("file          \(e(summary.file)) (\(Format.bytes(summary.fileByteCount)))")
        lines.append("format        \(summary.formatVersion)" + (summary.requiredFeatures.isEmpty ? "" : ", requires \(summary.requiredFeatures.joined(separator: ", "))"))
        lines.append("producer      \(e(summary.producer)) \(e(summary.producerVersion)), created \(summary.created)")
        lines.append("source        \(e(summary.source))")
        for (index, step) in (summary.lineage ?? []).enumerated() {
            lines.append("\(index == 0 ? "derived from" : "            ") ← \(e(step.source)) (content \(step.contentHash), created \(step.created))")
        }
        if let delta = summary.delta {
            // A sharded delta's root describes its own tensors; each delta shard records its own.
            let scope = summary.shards == nil ? "" : " in the root (each delta shard says what it patches)"
            lines.append("form          delta for base \(delta.baseContentHash): \(delta.unchangedTensors) tensors from the base, \(delta.patchedTensors) patched by rows, \(delta.fullTensors) stored whole\(scope)")
        } else {
            lines.append("form          \(summary.hasTrainingState ? "training (with optimizer / loss / row-count state)" : "serving")")
        }
        for entry in summary.metadata {
            lines.append("metadata      \(e(entry.key)) = \(e(entry.value))")
        }
        return lines
    }

    /// The shards' total, and with `--shards` each shard's size and rows.
    private func shardLines(_ list: [ModelSummary.ShardSummary], _ summary: ModelSummary, _ architecture: Architecture) -> [String] {
        let total = list.reduce(summary.fileByteCount) { $0 + $1.byteCount }
        var lines = ["sharded       \(list.count) shards beside the root, \(Format.bytes(total)) with the root (mtl-model verify checks them)"]
        if shards {
            let fields = architecture.fields.map(\.name)
            lines.append("")
            lines.append(Format.table(["shard", "bytes"] + fields.map { "\($0) rows" }, list.map { shard in
                [TerminalText.escaped(shard.file), Format.bytes(shard.byteCount)] + shard.rows.map(String.init)
            }))
        }
        return lines
    }

    /// The tensor table: with `--stats` each tensor's statistics, else its directory entry.
    private func tensorTable(_ rows: [ModelSummary.Tensor]) -> String {
        let e = TerminalText.escaped
        if stats {
            return Format.table(["tensor", "dtype", "min", "max", "mean", "std", "zeros", "nan", "inf"], rows.map { row in
                let s = row.statistics!
                return [e(row.name), row.dtype.description, Format.number(s.min), Format.number(s.max), Format.number(s.mean),
                        Format.number(s.std), Format.number(s.zeroFraction), "\(s.nanCount)", "\(s.infCount)"]
            })
        }
        return Format.table(["tensor", "dtype", "shape", "role", "bytes", "offset", "compression"], rows.map { row in
            [e(row.name), row.dtype.description, "[" + row.shape.map(String.init).joined(separator: ", ") + "]",
             row.role.description, "\(row.storedByteCount)", "\(row.offset)", row.compression.description]
        })
    }
}

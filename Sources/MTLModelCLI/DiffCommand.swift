import ArgumentParser
import MTLModel

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What changed between two models: architecture, metadata, tensors, embedding rows by feature id.",
        discussion: "Exit 0 when equal within tolerance (default: exactly equal), 1 when they differ, 2 on errors."
    )

    @Argument(help: "The first (older) model.")
    var a: String

    @Argument(help: "The second (newer) model.")
    var b: String

    @Option(help: "Absolute tolerance: elements closer than atol + rtol·|a| count as equal.")
    var atol: Double = 0

    @Option(help: "Relative tolerance.")
    var rtol: Double = 0

    @Flag(help: "List the most changed ids of each embedding table.")
    var rows = false

    @Option(help: "How many ids --rows lists per table.")
    var top: Int = 10

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    func validate() throws {
        guard atol >= 0, rtol >= 0, atol.isFinite, rtol.isFinite else { throw ValidationError("--atol and --rtol must be finite and not negative") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        let report = try ModelDiff(tolerance: DiffTolerance(absolute: atol, relative: rtol), topRowCount: rows ? top : nil)
            .compare(try limits.open(a), try limits.open(b))
        if json {
            try Terminal.json(Output(a: a, b: b, equal: report.equal, report: report))
        } else {
            Terminal.output(render(report))
        }
        if !report.equal { throw ExitCode(1) }
    }

    struct Output: Encodable {
        var schemaVersion = 1
        var a: String
        var b: String
        var equal: Bool
        var report: ModelDiffReport
    }

    private func render(_ report: ModelDiffReport) -> String {
        let e = TerminalText.escaped
        var lines: [String] = []
        if !report.architecture.isEmpty {
            lines.append("architecture:")
            lines += report.architecture.map { "  " + e($0) }
        }
        if !report.metadata.isEmpty {
            lines.append("metadata:")
            lines += report.metadata.map { "  " + e($0) }
        }
        lines += report.onlyInA.map { "only in \(e(a)): tensor \(e($0))" }
        lines += report.onlyInB.map { "only in \(e(b)): tensor \(e($0))" }
        let changed = report.tensors.filter { !$0.equal }
        if !changed.isEmpty {
            lines.append("")
            lines.append(Format.table(["tensor", "dtypes", "max |Δ|", "rel. L2 change", "cosine", "beyond tol."], changed.map { t in
                guard t.sameShape else {
                    return [e(t.name), "\(t.dtypeA) → \(t.dtypeB)", "shape \(t.shapeA) → \(t.shapeB)", "-", "-", "-"]
                }
                return [e(t.name), t.quantizationError ? "\(t.dtypeA) → \(t.dtypeB) (quantization)" : t.dtypeA.description,
                        Format.number(t.maxAbsoluteDifference), Format.number(t.relativeL2Change), Format.number(t.cosineSimilarity),
                        Format.number(t.fractionBeyondTolerance)]
            }))
        }
        lines.append("\(report.tensors.count - changed.count) of \(report.tensors.count) common tensors equal within tolerance")
        if !report.tables.isEmpty {
            lines.append("")
            lines.append(Format.table(["table", "by", "rows", "added", "removed", "changed", "unchanged", "p50 change", "p99", "max"], report.tables.map { t in
                [e(t.field), t.keyed ? "key" : "row", "\(t.rowsA) → \(t.rowsB)", "\(t.added)", "\(t.removed)", "\(t.changed)", "\(t.unchanged)",
                 Format.number(t.p50RelativeChange), Format.number(t.p99RelativeChange), Format.number(t.maxRelativeChange)]
            }))
            for table in report.tables {
                guard let top = table.topChanged, !top.isEmpty else { continue }
                lines.append("most changed \(e(table.field)) ids: " + top.map { "\($0.id) (\(Format.number($0.relativeChange)))" }.joined(separator: ", "))
            }
        }
        lines.append("")
        lines.append(report.equal ? "models are equal within tolerance" : "models differ")
        return lines.joined(separator: "\n")
    }
}

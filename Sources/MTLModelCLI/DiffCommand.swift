import ArgumentParser
import Foundation
import MTLModel

struct DiffCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "What changed between two models: architecture, metadata, tensors, embedding rows by feature id.",
        discussion: "Exit 0 when equal within tolerance (default: exactly equal), 1 when they differ, 2 on errors.\n\nExamples:\n  mtl-model diff old.mtlm new.mtlm --rows --data test.txt --html diff.html\n  mtl-model diff a.mtlm b.mtlm --atol 1e-6 --json"
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

    @Flag(help: "List every tensor only one model holds (by default: how many of each kind).")
    var tensors = false

    @Option(help: "Score this dataset with both models (same fields and tasks) and compare the predictions.")
    var data: String?

    @Option(help: "Threads: tables compared at once (about 80 MB each), and scoring --data.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @Option(help: "Also write the report as one self-contained HTML file: changes per tensor, per-row change per table, and with --data the predictions' shift.")
    var html: String?

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard atol >= 0, rtol >= 0, atol.isFinite, rtol.isFinite else { throw ValidationError("--atol and --rtol must be finite and not negative") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        let modelA = try limits.model(a), modelB = try limits.model(b)
        try conclude(progress.run(total: Progress.byteCount(of: [modelA, modelB])) { try differ.compare(modelA, modelB) }, modelA, modelB)
    }

    private var differ: ModelDiff {
        ModelDiff(tolerance: DiffTolerance(absolute: atol, relative: rtol), topRowCount: rows ? top : nil, threadCount: threads)
    }

    /// Compares the predictions (`--data`), prints the report; exit 1 when the models differ.
    private func conclude(_ report: ModelDiffReport, _ modelA: Model, _ modelB: Model) throws {
        var report = report
        if let data {
            report.predictions = try QualityComparison.compare(modelA, modelB, data: data, threadCount: threads)
        }
        if let html { try DiffReport.make(a: a, b: b, report).write(to: html) }
        if json {
            try Terminal.json(Output(a: a, b: b, equal: report.equal, report: report))
        } else {
            Terminal.output(render(report))
        }
        if !report.equal { throw ExitCode(1) }
    }

    struct Output: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var a: String
        var b: String
        var equal: Bool
        var report: ModelDiffReport
    }

    private func render(_ report: ModelDiffReport) -> String {
        var lines = renderDifferences(report) + renderTensors(report) + renderTables(report) + renderPredictions(report)
        lines.append("")
        let nonFinite = report.tensors.contains { $0.nonFiniteA + $0.nonFiniteB > 0 }
        lines.append(report.equal ? "models are equal within tolerance" : nonFinite ? "models differ (values that are NaN or Inf are never equal)" : "models differ")
        return lines.joined(separator: "\n")
    }

    /// The architecture's and metadata's differences, and the tensors only one model has.
    private func renderDifferences(_ report: ModelDiffReport) -> [String] {
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
        for (names, model) in [(report.onlyInA, a), (report.onlyInB, b)] where !names.isEmpty {
            if tensors {
                lines += names.map { "only in \(e(model)): tensor \(e($0))" }
            } else {
                lines.append("only in \(e(model)): " + Self.kinds(names) + " (--tensors lists them)")
            }
        }
        return lines
    }

    /// The common tensors that changed (a table, then the small ones' values), those holding
    /// NaN or Inf, and the count of equal ones.
    private func renderTensors(_ report: ModelDiffReport) -> [String] {
        let e = TerminalText.escaped
        var lines: [String] = []
        let changed = report.tensors.filter { !$0.equal }
        if !changed.isEmpty {
            lines.append("")
            lines.append(Format.table(["tensor", "dtypes", "max |Δ|", "rel. L2 change", "cosine", "beyond tol."], changed.map { t in
                guard t.sameShape else {
                    return [e(t.name), Self.dtypes(t), "shape \(t.shapeA) → \(t.shapeB)", "-", "-", "-"]
                }
                return [e(t.name), Self.dtypes(t),
                        Format.number(t.maxAbsoluteDifference), Format.number(t.relativeL2Change), Format.number(t.cosineSimilarity),
                        t.changedElementCount.map { "\($0) of \(t.shapeA.reduce(1, *)) elements" } ?? Format.number(t.fractionBeyondTolerance)]
            }))
        }
        for t in changed {
            guard let count = t.changedElementCount else { continue }
            if let valueA = t.valueA, let valueB = t.valueB {
                lines.append("\(e(t.name)): \(valueA) → \(valueB)")
            } else {
                lines.append("\(e(t.name)): \(count) of \(t.shapeA.reduce(1, *)) elements differ")
            }
        }
        for t in report.tensors where t.nonFiniteA + t.nonFiniteB > 0 {
            lines.append("\(e(t.name)) holds NaN or Inf: \(t.nonFiniteA) values in \(e(a)), \(t.nonFiniteB) in \(e(b)) (never equal; mtl-model verify lists them)")
        }
        lines.append("\(report.tensors.count - changed.count) of \(report.tensors.count) common tensors equal within tolerance")
        return lines
    }

    /// Each table's rows added, removed and changed, and the ids that changed most.
    private func renderTables(_ report: ModelDiffReport) -> [String] {
        let e = TerminalText.escaped
        var lines: [String] = []
        if !report.tables.isEmpty {
            lines.append("")
            lines.append(Format.table(["table", "by", "rows", "added", "removed", "changed", "unchanged", "p50 change", "p99", "max"], report.tables.map { t in
                [e(t.field), t.keyed ? "key" : "row", "\(t.rowsA) → \(t.rowsB)", "\(t.added)", "\(t.removed)", "\(t.changed)", "\(t.unchanged)",
                 Format.number(t.p50RelativeChange), Format.number(t.p99RelativeChange), Format.number(t.maxRelativeChange)]
            }))
            for table in report.tables {
                let what = table.keyed ? "ids" : "rows"
                if let top = table.topChanged, !top.isEmpty {
                    lines.append("most changed \(e(table.field)) \(what): " + top.map { "\($0.id) (\(Format.number($0.relativeChange)))" }.joined(separator: ", "))
                }
                if let added = table.addedIDs, !added.isEmpty {
                    lines.append("\(e(table.field)) \(what) added: " + added.joined(separator: ", ") + (table.added > added.count ? ", … (\(table.added) in all)" : ""))
                }
                if let removed = table.removedIDs, !removed.isEmpty {
                    lines.append("\(e(table.field)) \(what) removed: " + removed.joined(separator: ", ") + (table.removed > removed.count ? ", … (\(table.removed) in all)" : ""))
                }
            }
        }
        return lines
    }

    /// How the predictions of the two models differ on the samples given.
    private func renderPredictions(_ report: ModelDiffReport) -> [String] {
        guard let predictions = report.predictions else { return [] }
        var lines: [String] = []
        lines.append("")
        lines.append("predictions on \(predictions.sampleCount) samples")
        lines.append(Format.table(["task", "mean |Δp|", "p50", "p99", "max", "rank corr.", "top-k overlap", "auc a", "auc b", "Δauc 95% CI", "Δlogloss"],
                                  predictions.tasks.map { t in
            [t.task, Format.number(t.meanAbsoluteDeltaP), Format.number(t.p50AbsoluteDeltaP), Format.number(t.p99AbsoluteDeltaP),
             Format.number(t.maxAbsoluteDeltaP), Format.number(t.rankCorrelation),
             t.topK.map { "\(Format.number(t.topKOverlap)) (k = \($0))" } ?? "-", Format.number(t.before.auc), Format.number(t.after.auc),
             t.deltaAUCLow.map { "\(Format.number(t.deltaAUC)) [\(Format.number($0)), \(Format.number(t.deltaAUCHigh))]" } ?? "-",
             Format.number(t.deltaLogloss)]
        }))
        return lines
    }
}

extension DiffCommand {
    /// "float32 → int8-rowwise (quantization)", or a folded layer's "(batch norm folded)".
    static func dtypes(_ t: TensorComparison) -> String {
        let types = t.dtypeA == t.dtypeB ? t.dtypeA.description : "\(t.dtypeA) → \(t.dtypeB)"
        if t.batchNormFolded == true { return types + (t.dtypeA == t.dtypeB ? " (batch norm folded)" : " (batch norm folded, quantized)") }
        return t.quantizationError ? types + " (quantization)" : types
    }

    /// "37 optimizer tensors, 4 stats tensors": names counted by their first component.
    static func kinds(_ names: [String]) -> String {
        var counts: [String: Int] = [:]
        for name in names { counts[String(name.prefix { $0 != "." }), default: 0] += 1 }
        return counts.keys.sorted().map { "\(counts[$0]!) \(TerminalText.escaped($0)) tensor\(counts[$0]! == 1 ? "" : "s")" }.joined(separator: ", ")
    }
}

extension DiffCommand: PlannableCommand {
    func plan(_ arguments: [String], planPath: String) throws -> TaskPlan {
        try TaskPlan.diff(command: arguments, a: limits.model(a), b: limits.model(b), planPath: planPath)
    }

    func runTask(_ plan: TaskPlan, index: Int) throws -> TaskResult {
        try plan.runDiff(differ, limits.model(a), limits.model(b), index: index)
    }

    /// `--data` is scored here, by the finish: predictions need every shard of both models.
    func finish(_ plan: TaskPlan) throws {
        let modelA = try limits.model(a), modelB = try limits.model(b)
        try conclude(plan.finishDiff(differ, modelA, modelB), modelA, modelB)
    }
}

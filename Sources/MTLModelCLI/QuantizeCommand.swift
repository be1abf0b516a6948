import ArgumentParser
import Foundation
import MTLModel

struct QuantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize",
        abstract: "Shrink a model's tables and dense layers, and check on real predictions what it cost.",
        discussion: """
            Embedding tables per row (int8: uint8 + float32 scale and bias; int4: 4-bit + float16 scale \
            and bias, clipping range searched), dense weights as fp16 / bf16 or int8 with one scale per \
            output channel. First-order tables take float16 when int8 or int4 is asked (one value per row: \
            a scale and bias would cost more than they save). With a gate option and --eval, nothing is \
            written and the exit code is 1 when the gate fails.
            """
    )

    @Argument(help: "The .mtlm model to quantize.")
    var input: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @Option(help: "Embedding and first-order tables: fp32, fp16, bf16, int8 or int4.")
    var embeddings = "int8"

    @Option(help: "Dense weights (shared layers, towers, heads): fp32, fp16, bf16 or int8.")
    var dense = "fp16"

    @Option(name: .customLong("field"), help: "Per-field type NAME=TYPE, overriding --embeddings (repeatable).")
    var fields: [String] = []

    @Option(help: "Score this dataset with both models and compare (MODEL.md text format).")
    var eval: String?

    @Option(help: "Fail (exit 1, nothing written) if any task's AUC drops by more than this.")
    var maxAUCDrop: Double?

    @Option(help: "Fail (exit 1, nothing written) if any task's logloss grows by more than this.")
    var maxLoglossIncrease: Double?

    @Option(help: "Threads for --eval.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    func plan() throws -> QuantizationPlan {
        guard let embeddingType = QuantizationPlan.embeddingType(named: embeddings) else {
            throw ValidationError("--embeddings must be fp32, fp16, bf16, int8 or int4, got '\(embeddings)'")
        }
        guard let denseType = QuantizationPlan.denseType(named: dense) else {
            throw ValidationError("--dense must be fp32, fp16, bf16 or int8, got '\(dense)'")
        }
        var overrides: [String: DType] = [:]
        for item in fields {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let type = QuantizationPlan.embeddingType(named: parts[1]) else {
                throw ValidationError("--field takes NAME=TYPE with TYPE fp32, fp16, bf16, int8 or int4, got '\(item)'")
            }
            overrides[parts[0]] = type
        }
        return QuantizationPlan(embeddings: embeddingType, dense: denseType, fields: overrides)
    }

    func validate() throws {
        _ = try plan()
        if (maxAUCDrop != nil || maxLoglossIncrease != nil) && eval == nil {
            throw ValidationError("--max-auc-drop and --max-logloss-increase need --eval DATA")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let model = try limits.open(input)
        // Written beside the target under a temporary name, moved into place only when every
        // gate passes: a failed gate leaves nothing at the output path.
        let pending = PendingOutput(target: output)
        var report = try ModelQuantizer(plan: try plan()).quantize(model, to: pending.path, source: "quantize \(input)")
        var failures: [String] = []
        if let eval {
            let comparison = try QualityComparison.compare(model, try ModelFile(path: pending.path), data: eval, threadCount: threads)
            report.evaluation = comparison
            for task in comparison.tasks {
                if let limit = maxAUCDrop, let before = task.before.auc, let after = task.after.auc, before - after > limit {
                    failures.append("\(task.task): AUC dropped by \(Format.number(before - after)) > \(Format.number(limit))")
                }
                if let limit = maxLoglossIncrease, let delta = task.deltaLogloss, delta > limit {
                    failures.append("\(task.task): logloss grew by \(Format.number(delta)) > \(Format.number(limit))")
                }
            }
        }
        if failures.isEmpty { try pending.commit() }
        let gate = (maxAUCDrop != nil || maxLoglossIncrease != nil) ? Gate(passed: failures.isEmpty, failures: failures) : nil
        if json {
            try Terminal.json(Output(input: input, output: output, written: failures.isEmpty, report: report, gate: gate))
        } else {
            Terminal.output(render(report, gate: gate))
        }
        if !failures.isEmpty { throw ExitCode(1) }
    }


    struct Gate: Encodable {
        var passed: Bool
        var failures: [String]
    }

    struct Output: Encodable {
        var schemaVersion = 1
        var input: String
        var output: String
        var written: Bool
        var report: QuantizationReport
        var gate: Gate?
    }

    private func render(_ report: QuantizationReport, gate: Gate?) -> String {
        var lines: [String] = []
        lines.append(Format.table(["section", "before", "after", "ratio"], (report.sections + [report.total]).map {
            [$0.section, Format.bytes($0.byteCountBefore), Format.bytes($0.byteCountAfter), String(format: "%.3f", $0.ratio)]
        }))
        if !report.tensors.isEmpty {
            lines.append("")
            lines.append(Format.table(["tensor", "from", "to", "bytes after", "mean rel. error", "max rel. error"], report.tensors.map {
                [TerminalText.escaped($0.name), $0.dtypeBefore.description, $0.dtypeAfter.description, Format.bytes($0.byteCountAfter),
                 Format.number($0.meanRelativeError), Format.number($0.maxRelativeError)]
            }))
        }
        if let evaluation = report.evaluation {
            lines.append("")
            lines.append("evaluated on \(evaluation.sampleCount) samples")
            lines.append(Format.table(["task", "auc before", "auc after", "Δauc", "Δauc 95% CI", "logloss before", "logloss after", "Δlogloss", "calibration before", "after", "Δcalibration"],
                                      evaluation.tasks.map { t in
                [t.task, Format.number(t.before.auc), Format.number(t.after.auc), Format.number(t.deltaAUC),
                 t.deltaAUCLow.map { "[\(Format.number($0)), \(Format.number(t.deltaAUCHigh))]" } ?? "-",
                 Format.number(t.before.logloss), Format.number(t.after.logloss), Format.number(t.deltaLogloss),
                 Format.number(t.before.calibration), Format.number(t.after.calibration), Format.number(t.deltaCalibration)]
            }))
        }
        if let gate {
            lines.append("")
            lines.append(gate.passed ? "gate: passed" : "gate: FAILED, nothing written: " + gate.failures.joined(separator: "; "))
        }
        return lines.joined(separator: "\n")
    }
}

struct DequantizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dequantize",
        abstract: "Decode every quantized or half-precision tensor back to float32 (to warm-start training)."
    )

    @Argument(help: "The .mtlm model.")
    var input: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    func run() throws {
        let model = try limits.open(input)
        let report = try ModelQuantizer(plan: .float32).quantize(model, to: output, source: "dequantize \(input)")
        Terminal.output("wrote \(TerminalText.escaped(output)): \(report.tensors.count) tensors decoded to float32, \(Format.bytes(report.total.byteCountBefore)) → \(Format.bytes(report.total.byteCountAfter))")
    }
}

/// A file written under a temporary name beside its target and moved into place on commit;
/// removed otherwise.
final class PendingOutput {
    let target: String
    let path: String
    private var committed = false

    init(target: String) {
        self.target = target
        let url = URL(fileURLWithPath: target)
        // The naming of the library's temporary files, so the next write cleans it up after a crash.
        path = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).mtlm-tmp-\(getpid())-pending").path
    }

    deinit {
        if !committed { unlink(path) }
    }

    func commit() throws {
        guard rename(path, target) == 0 else {
            throw MTLModelError(.io, "cannot move the output into place: \(String(cString: strerror(errno)))", file: target)
        }
        committed = true
    }
}

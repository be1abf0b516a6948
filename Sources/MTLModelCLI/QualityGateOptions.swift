import ArgumentParser
import Foundation
import MTLModel

/// `--eval DATA` and its gates, shared by the commands that rewrite a model (`quantize`,
/// `convert`): both models score the data, and a failed gate leaves nothing at the output path.
struct QualityGateOptions: ParsableArguments {
    @Option(help: "Score this dataset with both models and compare (MODEL.md text format).")
    var eval: String?

    @Option(help: "Fail (exit 1, nothing written) if any task's AUC drops by more than this.")
    var maxAUCDrop: Double?

    @Option(help: "Fail (exit 1, nothing written) if any task's logloss grows by more than this.")
    var maxLoglossIncrease: Double?

    @Option(help: "Also write the report as one self-contained HTML file: sizes, reconstruction error; with --eval each step's ΔAUC and the calibration before and after. Written whether the gate passes or not.")
    var html: String?

    @Option(help: "Threads: checking the input, windows of rows encoded and written at once, and scoring --eval.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func validate() throws {
        if (maxAUCDrop != nil || maxLoglossIncrease != nil) && eval == nil {
            throw ValidationError("--max-auc-drop and --max-logloss-increase need --eval DATA")
        }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    /// The gate these options describe.
    var gate: QualityGate {
        QualityGate(data: eval, maxAUCDrop: maxAUCDrop, maxLoglossIncrease: maxLoglossIncrease, threadCount: threads)
    }
}

extension QualityGate.Outcome {
    /// The comparison table and the gate's verdict, for text output.
    var rendered: [String] {
        var lines: [String] = []
        if let comparison {
            lines.append("")
            lines.append("evaluated on \(comparison.sampleCount) samples")
            lines.append(Format.table(["task", "auc before", "auc after", "Δauc", "Δauc 95% CI", "logloss before", "logloss after", "Δlogloss", "calibration before", "after", "Δcalibration", "max |Δp|"],
                                      comparison.tasks.map { t in
                [t.task, Format.number(t.before.auc), Format.number(t.after.auc), Format.number(t.deltaAUC),
                 t.deltaAUCLow.map { "[\(Format.number($0)), \(Format.number(t.deltaAUCHigh))]" } ?? "-",
                 Format.number(t.before.logloss), Format.number(t.after.logloss), Format.number(t.deltaLogloss),
                 Format.number(t.before.calibration), Format.number(t.after.calibration), Format.number(t.deltaCalibration),
                 Format.number(t.maxAbsoluteDeltaP)]
            }))
        }
        if let attribution {
            lines.append("")
            lines.append("each step alone (applied to the input by itself, scored on the same samples):")
            lines.append(Format.table(["step", "task", "Δauc", "Δauc 95% CI", "Δlogloss", "Δcalibration", "max |Δp|"],
                                      attribution.steps.flatMap { step in
                step.comparison.tasks.map { t in
                    [step.name, t.task, Format.number(t.deltaAUC), t.deltaAUCLow.map { "[\(Format.number($0)), \(Format.number(t.deltaAUCHigh))]" } ?? "-",
                     Format.number(t.deltaLogloss), Format.number(t.deltaCalibration), Format.number(t.maxAbsoluteDeltaP)]
                }
            }))
        }
        if let verdict {
            lines.append("")
            lines.append(verdict.passed ? "gate: passed" : "gate: FAILED, nothing written: " + verdict.failures.joined(separator: "; "))
            if !verdict.passed, let attribution {
                let failing = attribution.steps.filter { !$0.failures.isEmpty }
                lines.append(failing.isEmpty ? "no step fails the gate alone: their costs add up"
                             : "fails the gate alone: " + failing.map { "\($0.name) (\($0.failures.joined(separator: "; ")))" }.joined(separator: "; "))
            }
        }
        return lines
    }
}

import ArgumentParser
import MTLModel

/// A command that rewrites a model file by file into an output it may hold back (`quantize`,
/// `dequantize`, `convert`): run in one process, or planned as one task per shard of its
/// input, the finish then concluding as the single process does.
protocol RewritingCommand: PlannableCommand {
    associatedtype Report
    var input: String { get }
    var output: String { get }
    var limits: ReadLimitOptions { get }
    var progress: ProgressOptions { get }
    /// The rewrite its options ask for.
    func job(_ model: Model) throws -> RewriteJob<Report>
    /// Runs the command's gate, if any (which commits `pending` when it passes, and scores each
    /// of `steps` alone), and prints the report; returns whether the output was written.
    func conclude(_ model: Model, _ report: Report, _ pending: PendingOutput, steps: [StepAttribution.Variant]) throws -> Bool
}

extension RewritingCommand {
    func run() throws {
        let model = try limits.model(input)
        // Written beside the target under a temporary name, moved into place only when every
        // gate passes: a failed gate leaves nothing at the output path.
        let pending = try PendingOutput(target: output)
        let job = try job(model)
        let report = try progress.run(total: Progress.byteCount(of: [model])) { try job.write(into: pending) }
        if try !conclude(model, report, pending, steps: job.steps) { throw ExitCode(1) }
    }

    func plan(_ arguments: [String], planPath: String) throws -> TaskPlan {
        try TaskPlan.rewrite(command: arguments, model: limits.model(input), output: output, planPath: planPath)
    }

    func runTask(_ plan: TaskPlan, index: Int) throws -> TaskResult {
        try plan.runRewrite(job(limits.model(input)), index: index)
    }

    func finish(_ plan: TaskPlan) throws {
        let model = try limits.model(input)
        var written = false
        let job = try job(model)
        _ = try plan.finishRewrite(job) { report, pending in
            written = try conclude(model, report, pending, steps: job.steps)
            return written
        }
        if !written { throw ExitCode(1) }
    }
}

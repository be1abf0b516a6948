import Foundation

/// `quantize`, `dequantize` and `convert` of a sharded model as a plan: task i rewrites shard
/// i + 1 alone (`ShardedRewrite.writeShard`), the finish writes the root from what the tasks
/// wrote and hands back the command's report and the pending output (which the command
/// commits, or drops after a gate).
extension TaskPlan {
    /// The plan of `command`, a rewrite of `model` into `output`.
    public static func rewrite(command: [String], model: Model, output: String, planPath: String) throws -> TaskPlan {
        try requireSharded(model, command: command)
        return try make(kind: .rewrite, command: command, inputs: [model.file], output: output, shardCount: model.shards.count,
                        planPath: planPath) { [model.path, model.shards[$0].path] }
    }

    /// Runs task `index` of a rewrite plan: shard `index + 1` rewritten under its staged name.
    public func runRewrite<Report>(_ job: RewriteJob<Report>, index: Int) throws -> TaskResult {
        let task = try self.task(index)
        try checkKind(.rewrite)
        try checkNotFinished()
        try checkInputs(job.rewrite.model.file)
        let written = try fixed(job.rewrite).writeShard(index, to: task.writes!, modelID: modelIDBytes,
                                                        rootFileName: (output! as NSString).lastPathComponent)
        let result = TaskResult(plan: id, index: index, file: .init(path: task.writes!, byteCount: written.file.byteCount,
                                                                    manifestHash: hex64(written.file.manifestHash)),
                                changes: written.changes)
        try save(result)
        return result
    }

    /// The finish of a rewrite plan: every task's shard checked, the root written naming them
    /// into a pending output, the report as the single process makes it. `decide` commits the
    /// output (after its gate) and says whether it did; the plan is then finished (the staged
    /// shards removed when it did not).
    public func finishRewrite<Report>(_ job: RewriteJob<Report>, deciding decide: (Report, PendingOutput) throws -> Bool) throws -> Report {
        try checkKind(.rewrite)
        try checkNotFinished()
        try checkInputs(job.rewrite.model.file)
        let results = try results()
        let shards = try results.map { result in
            let file = try stagedShard(result)
            return ShardedRewrite.WrittenShard(
                file: ShardFile(file),
                tensors: file.tensors, changes: result.changes ?? [])
        }
        let pending = try adoptingOutput()
        let outcome = try fixed(job.rewrite).writeRoot(to: pending.path, modelID: modelIDBytes, shards: shards)
        let report = job.report(outcome)
        let committed = try decide(report, pending)
        if !committed { removeStagedOutputs() }
        try markFinished(committed: committed)
        return report
    }

    /// The rewrite with the plan's creation time, so every task's file records the same.
    private func fixed(_ rewrite: ShardedRewrite) -> ShardedRewrite {
        var rewrite = rewrite
        rewrite.provenance.createdUnixSeconds = createdUnixSeconds
        return rewrite
    }

    /// The pending output at the plan's target holding the tasks' staged shards.
    func adoptingOutput() throws -> PendingOutput {
        let pending = try PendingOutput(target: output!, delta: kind == .delta)
        for task in tasks { try pending.adoptShard(task.writes!, index: task.index + 1, of: tasks.count) }
        return pending
    }

    func checkKind(_ kind: Kind) throws {
        guard self.kind == kind else {
            throw MTLModelError(.invalidArgument, "the plan is of a \(self.kind.rawValue) (\(command.first ?? "?")), not of this command")
        }
    }

    /// A plan splits a sharded model's work by shard: a model of one file is one piece of work.
    static func requireSharded(_ model: Model, command: [String]) throws {
        guard model.isSharded else {
            throw MTLModelError(.invalidArgument, "is one file: a plan splits a sharded model's work by shard; run `mtl-model \(command.first ?? "")` on it directly, or split it first (`mtl-model shard`)", file: model.path)
        }
    }
}

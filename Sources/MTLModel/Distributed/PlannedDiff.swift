import Foundation

/// `diff` of two sharded models split alike as a plan: task i compares shard i + 1 of A with
/// shard i + 1 of B (`ModelDiff.compareShard`) — their rows hold the same ids — and the finish
/// merges the shards' figures in order (sums added, quantile sketches merged, the most
/// changed rows merged exactly) and compares the roots' tensors: the report the single
/// process prints, which merges the same figures the same way.
extension TaskPlan {
    /// The plan of `command`, a diff of `a` against `b`.
    public static func diff(command: [String], a: Model, b: Model, planPath: String) throws -> TaskPlan {
        if let mismatch = ShardedDelta.layoutMismatch(a, b, names: (a.path, b.path)) {
            throw MTLModelError(.invalidArgument, "\(mismatch): a plan compares shard k of one model with shard k of the other, so both must be "
                + "split alike; run `mtl-model diff` directly, or split one like the other first (\(ShardedDelta.splitCommand(b.path, like: a)))",
                file: b.path)
        }
        return try make(kind: .diff, command: command, inputs: [a.file, b.file], output: nil, shardCount: a.shards.count, planPath: planPath) {
            [a.path, a.shards[$0].path, b.path, b.shards[$0].path]
        }
    }

    /// Runs task `index` of a diff plan: the figures of shard `index + 1` of both models.
    public func runDiff(_ diff: ModelDiff, _ a: Model, _ b: Model, index: Int) throws -> TaskResult {
        _ = try task(index)
        try checkKind(.diff)
        try checkNotFinished()
        try checkInputs(a.file, b.file)
        var result = TaskResult(plan: id, index: index)
        result.diff = try diff.compareShard(index, a, b)
        try save(result)
        return result
    }

    /// The finish of a diff plan: the tasks' figures merged one result at a time (a result can
    /// hold a sketch of megabytes), the roots compared, the report.
    public func finishDiff(_ diff: ModelDiff, _ a: Model, _ b: Model) throws -> ModelDiffReport {
        try checkKind(.diff)
        try checkNotFinished()
        try checkInputs(a.file, b.file)
        var merged: ShardDiff?
        for task in tasks {
            guard let part = try result(of: task).diff else {
                throw MTLModelError(.malformed, "task \(task.index)'s result holds no comparison: run it again: mtl-model run-task PLAN --index \(task.index)", file: task.result)
            }
            if merged == nil { merged = part } else { merged!.merge(part) }
        }
        let report = try diff.compare(a, b, merged: merged!)
        try markFinished(committed: false)
        return report
    }
}

import Foundation

/// `delta` of two sharded models split alike as a plan: task i writes the delta of shard
/// i + 1 (`ShardedDelta.writeShard`, bound to the base's shard i + 1), the finish writes the
/// delta root naming the tasks' delta shards and commits.
extension TaskPlan {
    /// The plan of `command`, the delta turning `base` into `new`, written at `output`.
    public static func delta(command: [String], base: Model, new: Model, output: String, planPath: String) throws -> TaskPlan {
        if let mismatch = ShardedDelta.layoutMismatch(base, new) {
            throw MTLModelError(.invalidArgument, "\(mismatch): a plan makes the delta of each shard from the base's shard, so both must be "
                + "split alike; split \(new.path) like the base first (\(ShardedDelta.splitCommand(new.path, like: base)))", file: new.path)
        }
        return try make(kind: .delta, command: command, inputs: [base.file, new.file], output: output, shardCount: new.shards.count,
                        planPath: planPath) { [base.path, base.shards[$0].path, new.path, new.shards[$0].path] }
    }

    /// Runs task `index` of a delta plan: the delta of shard `index + 1` under its staged name.
    public func runDelta(base: Model, new: Model, index: Int) throws -> TaskResult {
        let task = try self.task(index)
        try checkKind(.delta)
        try checkNotFinished()
        try checkInputs(base.file, new.file)
        let written = try ShardedDelta.writeShard(index, base: base, new: new, to: task.writes!, deltaID: modelIDBytes,
                                                  rootFileName: (output! as NSString).lastPathComponent, provenance: provenance(base, new))
        var result = TaskResult(plan: id, index: index, file: .init(path: task.writes!, byteCount: written.file.byteCount,
                                                                    manifestHash: hex64(written.file.manifestHash)))
        result.delta = written.summary
        try save(result)
        return result
    }

    /// The finish of a delta plan: every task's delta shard checked, the delta root written and
    /// committed; the summary of the whole delta.
    public func finishDelta(base: Model, new: Model) throws -> ModelDelta.Summary {
        try checkKind(.delta)
        try checkNotFinished()
        try checkInputs(base.file, new.file)
        let shards = try results().map { result in
            let file = try stagedShard(result)
            guard let summary = result.delta else {
                throw MTLModelError(.malformed, "task \(result.index)'s result holds no delta summary: run it again: mtl-model run-task PLAN --index \(result.index)", file: tasks[result.index].result)
            }
            return (file: ShardFile(file), summary: summary)
        }
        let summary = try ShardedDelta.commitRoot(base: base, new: new, shards: shards, into: adoptingOutput(), deltaID: modelIDBytes,
                                                  provenance: provenance(base, new))
        try markFinished(committed: true)
        return summary
    }

    /// What every file of the delta records, at the plan's time (a task rerun writes the same bytes).
    private func provenance(_ base: Model, _ new: Model) -> Provenance {
        var provenance = ModelDelta.provenance(base, new)
        provenance.createdUnixSeconds = createdUnixSeconds
        return provenance
    }
}

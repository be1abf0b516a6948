import Foundation

/// `shard` (a split, or a reshard of a sharded model) as a plan: task i writes output shard
/// i + 1 — its rows of every table, found as the single process finds them (`ShardPlan`) — and
/// the finish writes the root naming the tasks' shards and commits.
extension TaskPlan {
    /// The plan of `command`, writing `model` as `options.shardCount` shards at `output`.
    public static func shard(command: [String], model: Model, output: String, options: ModelSharder.Options, planPath: String) throws -> TaskPlan {
        try ModelSharder.check(options)
        guard options.shardCount > 1 else {
            throw MTLModelError(.invalidArgument, "--shards 1 writes one file: a plan splits work by output shard; run `mtl-model shard` directly")
        }
        let sources = [model.path] + model.shards.map(\.path)
        return try make(kind: .shard, command: command, inputs: [model.file], output: output, shardCount: options.shardCount,
                        planPath: planPath) { _ in sources }
    }

    /// Runs task `index` of a shard plan: output shard `index + 1` under its staged name.
    public func runShard(_ model: Model, options: ModelSharder.Options, index: Int) throws -> TaskResult {
        let task = try self.task(index)
        try checkKind(.shard)
        try checkNotFinished()
        try checkInputs(model.file)
        let plan = try ShardPlan(model, options: fixed(options), output: output!, concurrentShards: 1)
        let file = try ModelSharder().writeShard(index + 1, model: model, plan: plan, to: task.writes!)
        let result = TaskResult(plan: id, index: index, file: .init(path: task.writes!, byteCount: file.byteCount,
                                                                    manifestHash: hex64(file.manifestHash)))
        try save(result)
        return result
    }

    /// The finish of a shard plan: every task's shard checked, the root written and committed.
    /// The report names the output `output` (as the command names it).
    public func finishShard(_ model: Model, output: String, options: ModelSharder.Options) throws -> ModelSharder.Report {
        try checkKind(.shard)
        try checkNotFinished()
        try checkInputs(model.file)
        let files = try results().map { result in
            let file = try stagedShard(result)
            return ShardFile(file)
        }
        let pending = try adoptingOutput()
        pending.synchronize = options.synchronize
        let fixed = fixed(options)
        let report = try ModelSharder().commit(model, files: files, into: pending, modelID: modelIDBytes,
                                               provenance: Provenance.derived(from: model.file, source: fixed.source, createdUnixSeconds: createdUnixSeconds),
                                               writerOptions: options.writerOptions(concurrentShards: 1), output: output)
        try markFinished(committed: true)
        return report
    }

    /// The options with the plan's model id and time, so every task's shard records the same.
    private func fixed(_ options: ModelSharder.Options) -> ModelSharder.Options {
        var options = options
        options.modelID = modelIDBytes
        options.createdUnixSeconds = createdUnixSeconds
        return options
    }
}

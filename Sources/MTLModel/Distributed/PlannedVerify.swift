import Foundation

/// `verify` of a sharded model as a plan: task i reads and checks shard i + 1 alone (every
/// checksum, the padding, the values, the keys' buckets), the finish checks the root and its
/// table against the shards (manifests only) and merges the shards' reports in order: the
/// report the single process prints.
extension TaskPlan {
    /// The plan of `command`, a verify of the sharded model whose root is `root`.
    public static func verify(command: [String], root: ModelFile, planPath: String) throws -> TaskPlan {
        guard let table = root.manifest.shards else {
            let what = root.manifest.shard != nil ? "is one shard" : "is one file"
            throw MTLModelError(.invalidArgument, "\(what): a plan splits a sharded model's work by shard; run `mtl-model verify` on it directly", file: root.path)
        }
        return try make(kind: .verify, command: command, inputs: [root], output: nil, shardCount: table.files.count, planPath: planPath) {
            [ShardNaming.beside(root: root.path, table.files[$0].fileName)]
        }
    }

    /// Runs task `index` of a verify plan: the shard's own checks. A shard that cannot be
    /// opened gives a result without a report (the finish names the problem from the root).
    public func runVerify(_ verifier: ModelVerifier, index: Int) throws -> TaskResult {
        let task = try self.task(index)
        try checkKind(.verify)
        try checkNotFinished()
        var result = TaskResult(plan: id, index: index)
        if let shard = try? ModelFile(path: task.reads[0], options: verifier.options) {
            result.file = FileFingerprint(shard)
            result.verification = verifier.verifyShard(shard)
        }
        try save(result)
        return result
    }

    /// The finish of a verify plan: the root and its table checked, the tasks' reports merged.
    /// Refuses, naming the task, a shard that is not the file its task verified.
    public func finishVerify(_ verifier: ModelVerifier, root: ModelFile) throws -> VerificationReport {
        try checkKind(.verify)
        try checkNotFinished()
        try checkInputs(root)
        let results = try results()
        var stale: Int?
        let report = verifier.verify(root) { index, shard in
            guard let verification = results[index].verification, results[index].file.map({ $0.matches(shard) }) == true else {
                stale = stale ?? index
                return VerificationReport(file: shard.path, formatVersion: "", tensorCount: 0, checkedByteCount: 0, problems: [])
            }
            return verification
        }
        if let stale {
            throw MTLModelError(.invalidArgument, "task \(stale) (\(tasks[stale].describes)) verified another file than the shard there now: run it again: mtl-model run-task PLAN --index \(stale)", file: tasks[stale].reads[0])
        }
        try markFinished(committed: false)
        return report
    }
}

import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one task of a plan did, as `finish` merges it: the file it wrote (or verified) and
/// the part of the command's report that only the shard's data can give. The same inputs give
/// the same result, byte for byte (no times, no host names).
public struct TaskResult: Codable, Sendable {
    /// The plan's id: a result of another plan (a plan made again over the same files) is refused.
    public var plan: String
    public var index: Int
    /// The shard written (rewrite, shard) or verified (verify); nil when a verify task could
    /// not open its shard (the finish reports why, from the root's side).
    public var file: TaskPlan.FileFingerprint?
    /// Rewrite: the changes of dtype in this shard, merged at the finish as the single
    /// process merges them.
    public var changes: [QuantizationReport.TensorChange]?
    /// Verify: the shard's own report.
    public var verification: VerificationReport?
    /// Diff: the shard pair's figures, merged at the finish (`ModelDiff.compare(_:_:merged:)`).
    public var diff: ShardDiff?
    /// Delta: what the shard's delta holds, added up at the finish.
    public var delta: ModelDelta.Summary?
}

/// What `finish` records once it has run: a plan is finished once.
struct FinishRecord: Codable {
    var plan: String
    /// Whether the output was committed (false: a gate refused it, or nothing is written).
    var committed: Bool
    var output: String?
}

extension TaskPlan {
    static let finishRecordName = "finished.json"

    var finishRecordPath: String { "\(resultDirectory)/\(Self.finishRecordName)" }

    /// Writes task `index`'s result (atomically: a killed task leaves none). A plan removed
    /// while the task ran (a driver gave up on it) gets no result, and the task's output is
    /// removed: nothing would ever finish or clean it.
    func save(_ result: TaskResult) throws {
        try checkNotFinished()
        guard FileManager.default.fileExists(atPath: resultDirectory) else {
            if let staged = tasks[result.index].writes { unlink(staged) }
            throw MTLModelError(.invalidArgument, "the plan's result directory is gone (the plan was abandoned): task \(result.index)'s output is removed", file: resultDirectory)
        }
        try Self.writeJSON(result, to: tasks[result.index].result)
    }

    /// Every task's result, in order (`result(of:)`).
    func results() throws -> [TaskResult] {
        try tasks.map(result(of:))
    }

    /// Task `task`'s result; refuses, naming the task, a result missing, unreadable or of
    /// another plan.
    func result(of task: Task) throws -> TaskResult {
        let rerun = "run it: mtl-model run-task PLAN --index \(task.index)"
        guard let data = FileManager.default.contents(atPath: task.result) else {
            throw MTLModelError(.invalidArgument, "task \(task.index) (\(task.describes)) has no result: \(rerun)", file: task.result)
        }
        guard let result = try? JSONDecoder().decode(TaskResult.self, from: data) else {
            throw MTLModelError(.malformed, "task \(task.index)'s result does not decode: \(rerun)", file: task.result)
        }
        guard result.plan == id, result.index == task.index else {
            throw MTLModelError(.invalidArgument, "task \(task.index)'s result is of another plan (\(result.plan), task \(result.index)): \(rerun)", file: task.result)
        }
        return result
    }

    /// The shard task `index` wrote, opened and checked against its result: the file the task
    /// wrote, of this plan's model.
    func stagedShard(_ result: TaskResult, options: ModelFile.Options = .init()) throws -> ModelFile {
        let task = tasks[result.index]
        let rerun = "run the task again: mtl-model run-task PLAN --index \(task.index)"
        guard let path = task.writes, let expected = result.file else {
            throw MTLModelError(.malformed, "task \(task.index)'s result names no output", file: task.result)
        }
        let file: ModelFile
        do {
            file = try ModelFile(path: path, options: options)
        } catch {
            throw MTLModelError(.invalidArgument, "task \(task.index) (\(task.describes)): its output cannot be read (\(error.message)): \(rerun)", file: path)
        }
        guard expected.matches(file), file.manifest.shard?.modelID == modelIDBytes else {
            throw MTLModelError(.invalidArgument, "task \(task.index) (\(task.describes)): the output is not the file the task wrote: \(rerun)", file: path)
        }
        return file
    }

    /// Refuses a plan already finished (its output committed or refused by a gate).
    func checkNotFinished() throws {
        guard let data = FileManager.default.contents(atPath: finishRecordPath) else { return }
        let record = try? JSONDecoder().decode(FinishRecord.self, from: data)
        let what = record.map { $0.committed ? "its output \($0.output ?? "") was committed" : "nothing was written" } ?? "see \(finishRecordPath)"
        throw MTLModelError(.invalidArgument, "the plan was finished already (\(what)): plan again to run the command again", file: finishRecordPath)
    }

    /// Records that the plan is finished, and removes what killed tasks left (their temporary
    /// files, a rerun having written the staged file they were writing).
    func markFinished(committed: Bool) throws {
        for path in tasks.compactMap(\.writes) {
            AtomicOutputFile.removeLeftovers(directory: (path as NSString).deletingLastPathComponent + "/",
                                             base: (path as NSString).lastPathComponent)
        }
        try Self.writeJSON(FinishRecord(plan: id, committed: committed, output: committed ? output : nil), to: finishRecordPath)
    }

    /// Removes the tasks' staged outputs (after a gate refused the model they make).
    func removeStagedOutputs() {
        for path in tasks.compactMap(\.writes) { unlink(path) }
    }
}

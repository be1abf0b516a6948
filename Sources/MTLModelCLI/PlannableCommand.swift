import ArgumentParser
import Foundation
import MTLModel

/// A command that `plan` can cut into tasks (docs/SCALE.md): it makes the plan of its
/// arguments, runs one task of it, and finishes it — printing what its single-process run
/// prints, with the same exit code.
protocol PlannableCommand: ParsableCommand {
    /// The plan of this command, given as `arguments`, written at `planPath`.
    func plan(_ arguments: [String], planPath: String) throws -> TaskPlan
    func runTask(_ plan: TaskPlan, index: Int) throws -> TaskResult
    func finish(_ plan: TaskPlan) throws
}

enum PlannedCommand {
    static let names = "verify, quantize, dequantize, convert, shard, diff, delta"

    /// The command of `arguments` (`COMMAND ARGS…`), parsed as `mtl-model` parses it.
    static func parse(_ arguments: [String]) throws -> any PlannableCommand {
        guard let name = arguments.first, !name.hasPrefix("-") else {
            throw MTLModelError(.invalidArgument, "name the command to plan (\(names)) and its arguments")
        }
        let command = try MTLModelCommand.parseAsRoot(arguments)
        // What the planned command's files record: the command, not `run-task` or `finish`.
        Invocation.arguments = arguments
        guard let plannable = command as? any PlannableCommand else {
            throw MTLModelError(.invalidArgument, "\(name) cannot be planned: the commands that can are \(names)")
        }
        return plannable
    }
}

import ArgumentParser
import Foundation
import MTLModel

struct RunTaskCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run-task",
        abstract: "Run one task of a plan: write its shard and its result (idempotent: a rerun writes the same bytes).",
        discussion: """
            The index comes from --index, else from SLURM_ARRAY_TASK_ID (a Slurm job array) or \
            JOB_COMPLETION_INDEX (a Kubernetes indexed job). Exit 0 done, 2 an error (the task's \
            output is then not there, or is the complete output of an earlier run).

            Example: mtl-model run-task q.json --index 3
            """
    )

    @Argument(help: "The plan (from `mtl-model plan`).")
    var plan: String

    @Option(help: "The task to run, 0…N-1.")
    var index: Int?

    @Flag(help: "Print the task's result as JSON.")
    var json = false

    func run() throws {
        let plan = try TaskPlan.load(plan)
        let index = try TaskPlan.taskIndex(given: index)
        let task = try plan.task(index)
        try plan.enterDirectory()
        let result = try PlannedCommand.parse(plan.command).runTask(plan, index: index)
        if json {
            try Terminal.json(result)
        } else {
            Terminal.output("task \(index) (\(task.describes)): done, \(TerminalText.escaped(result.file?.path ?? "no file")) → \(TerminalText.escaped(task.result))")
        }
    }
}

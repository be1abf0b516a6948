import ArgumentParser
import Foundation
import MTLModel

struct FinishCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finish",
        abstract: "Finish a plan: check every task's output, merge the results, commit the root last.",
        discussion: """
            Prints what the planned command prints run in one process, with its exit code. Refused \
            (exit 2, naming the task) when a task has not run or its output is not what it wrote, \
            and when the plan was finished already.

            Example: mtl-model finish q.json
            """
    )

    @Argument(help: "The plan (from `mtl-model plan`).")
    var plan: String

    func run() throws {
        let plan = try TaskPlan.load(plan)
        try plan.enterDirectory()
        try PlannedCommand.parse(plan.command).finish(plan)
    }
}

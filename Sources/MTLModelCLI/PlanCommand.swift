import ArgumentParser
import Foundation
import MTLModel

struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Cut a command on a sharded model into tasks, one per shard, to run anywhere (docs/SCALE.md).",
        discussion: """
            COMMAND is verify, quantize, dequantize, convert, shard, diff or delta (on sharded models; diff and delta of two models split alike), with its own arguments. Writes \
            PLAN.json and makes PLAN.json.d/ for the tasks' results; then run every task (`run-task \
            PLAN.json --index I` for I in 0…N-1: on a cluster, in a shell loop, with xargs -P) and \
            `finish PLAN.json`, which prints what COMMAND prints. Every worker must see the plan, the \
            input and the output's directory at the same paths (a shared filesystem).

            Example: mtl-model plan quantize big.mtlm big-int8.mtlm --embeddings int8 --out q.json
            """
    )

    @Option(help: "Where to write the plan.")
    var out: String

    @Argument(parsing: .allUnrecognized, help: "The command and its arguments.")
    var command: [String] = []

    func run() throws {
        let planned = try PlannedCommand.parse(command)
        let plan = try planned.plan(command, planPath: out)
        Terminal.output("wrote \(TerminalText.escaped(out)): \(plan.tasks.count) tasks of `\(TerminalText.escaped(command.joined(separator: " ")))`; run `mtl-model run-task \(TerminalText.escaped(out)) --index I` for I in 0…\(plan.tasks.count - 1), then `mtl-model finish \(TerminalText.escaped(out))`")
    }
}

import ArgumentParser
import MTLModel

struct DeltaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "delta",
        abstract: "Write only what changed from BASE to NEW (rows of tables, whole tensors), bound to BASE.",
        discussion: "Examples:\n  mtl-model delta step-1000.mtlm step-2000.mtlm step-2000.mtlmd"
    )

    @Argument(help: "The base model.")
    var base: String

    @Argument(help: "The new model.")
    var new: String

    @Argument(help: "The delta file to write.")
    var output: String

    @Flag(help: "Print the result as JSON.")
    var json = false

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func run() throws {
        let (baseModel, newModel) = (try limits.model(base), try limits.model(new))
        try conclude(progress.run(total: Progress.byteCount(of: [baseModel, newModel])) {
            try ModelDelta.make(base: baseModel, new: newModel, to: output)
        })
    }

    private func conclude(_ summary: ModelDelta.Summary) throws {
        if json {
            try Terminal.json(Output(base: base, new: new, output: output, summary: summary))
        } else {
            Terminal.output("wrote \(TerminalText.escaped(output)): \(Format.bytes(summary.deltaByteCount)) for a \(Format.bytes(summary.newByteCount)) model; "
                + "\(summary.unchangedTensors) tensors unchanged, \(summary.patchedTensors) patched (\(summary.storedRowCount) rows), \(summary.fullTensors) stored whole")
        }
    }

    struct Output: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var base: String
        var new: String
        var output: String
        var summary: ModelDelta.Summary
    }
}

extension DeltaCommand: PlannableCommand {
    func plan(_ arguments: [String], planPath: String) throws -> TaskPlan {
        try TaskPlan.delta(command: arguments, base: limits.model(base), new: limits.model(new), output: output, planPath: planPath)
    }

    func runTask(_ plan: TaskPlan, index: Int) throws -> TaskResult {
        try plan.runDelta(base: limits.model(base), new: limits.model(new), index: index)
    }

    func finish(_ plan: TaskPlan) throws {
        try conclude(plan.finishDelta(base: limits.model(base), new: limits.model(new)))
    }
}

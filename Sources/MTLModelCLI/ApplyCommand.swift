import ArgumentParser
import MTLModel

struct ApplyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Rebuild the new model from BASE and a delta made for it (refused for any other base).",
        discussion: "Examples:\n  mtl-model apply base.mtlm step-2000.mtlmd step-2000.mtlm"
    )

    @Argument(help: "The base model the delta was made from.")
    var base: String

    @Argument(help: "The delta file.")
    var delta: String

    @Argument(help: "The .mtlm file to write.")
    var output: String

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func run() throws {
        let baseModel = try limits.model(base)
        let deltaFile = try limits.open(delta)
        try progress.run(total: Progress.byteCount(of: [baseModel])) { try ModelDelta.apply(base: baseModel, delta: deltaFile, to: output) }
        Terminal.output("wrote \(TerminalText.escaped(output))")
    }
}

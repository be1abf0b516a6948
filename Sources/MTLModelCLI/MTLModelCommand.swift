import ArgumentParser
import MTLModel

/// The `mtl-model` root command.
public struct MTLModelCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "mtl-model",
        abstract: "Store, check and inspect multi-task NFwFM ranking models (.mtlm).",
        discussion: """
            Exit codes: 0 success; 1 a negative verdict (verify found problems); 2 an error \
            (unreadable or malformed input, bad arguments, I/O).
            """,
        version: "mtl-model \(MTLModelVersion.tool) (reads .mtlm format \(FormatVersion.readable) through \(FormatVersion.current), writes \(FormatVersion.readable) through \(FormatVersion.current): the lowest a model needs)\nkernels on this CPU: \(Kernels.summary)",
        subcommands: [SynthCommand.self, InspectCommand.self, VerifyCommand.self, ImportCommand.self, ExportCommand.self,
                      PredictCommand.self, EvalCommand.self, QuantizeCommand.self, DequantizeCommand.self, ConvertCommand.self, DiffCommand.self,
                      DeltaCommand.self, ApplyCommand.self, ShardCommand.self, PlanCommand.self, RunTaskCommand.self, FinishCommand.self]
    )

    public init() {}

    /// Runs the tool with `arguments` (without the program name) and returns the exit code:
    /// errors become one line on stderr.
    public static func run(_ arguments: [String]) -> Int32 {
        do {
            Invocation.arguments = arguments
            var command = try parseAsRoot(arguments)
            try command.run()
            return 0
        } catch let error as MTLModelError {
            Terminal.error("mtl-model: error: \(error)")
            return 2
        } catch let exit as ExitCode {
            return exit.rawValue
        } catch {
            let message = fullMessage(for: error)
            if exitCode(for: error) == .success {
                Terminal.output(message)
                return 0
            }
            // Argument errors in the style of every other error: the line that says what is
            // wrong first, then the parser's usage lines.
            Terminal.error(message.hasPrefix("Error: ") ? "mtl-model: error: " + message.dropFirst("Error: ".count) : message)
            return 2
        }
    }
}

import ArgumentParser
import Foundation
import MTLModel

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every checksum, the padding, the structure and the values of a model.",
        discussion: "Exit 0 valid, 1 invalid (every problem listed), 2 unreadable.\n\nExamples:\n  mtl-model verify model.mtlm --json"
    )

    @Argument(help: "The .mtlm file: a model, a sharded model's root (its shards are verified with it), or one shard alone.")
    var model: String

    @Option(help: "Threads reading chunks at once.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
    }

    @OptionGroup(title: "Limits") var limits: ReadLimitOptions

    @OptionGroup(title: "Progress") var progress: ProgressOptions

    func run() throws {
        let file: ModelFile
        do {
            file = try limits.open(model)
        } catch {
            if json { try Terminal.json(Unreadable(file: model, error: error.description)) }
            throw error
        }
        let total = file.fileByteCount + (file.manifest.shards?.files.reduce(0) { $0 + $1.byteCount } ?? 0)
        try conclude(progress.run(total: total) { verifier.verify(file) })
    }

    private var verifier: ModelVerifier { ModelVerifier(threadCount: threads, options: limits.modelOptions) }

    /// Prints the report; exit 1 when the model is invalid.
    private func conclude(_ report: VerificationReport) throws {
        if json {
            try Terminal.json(Output(report: report))
        } else {
            for problem in report.problems {
                var place: [String] = []
                if let file = problem.file { place.append("in \(TerminalText.escaped(file))") }
                if let tensor = problem.tensor { place.append("tensor \"\(TerminalText.escaped(tensor))\"") }
                if let offset = problem.byteOffset { place.append("at byte \(offset)") }
                Terminal.output("\(TerminalText.escaped(model)): \(problem.kind.rawValue): " + (place.isEmpty ? "" : place.joined(separator: ", ") + ": ") + problem.message)
            }
            Terminal.output("\(TerminalText.escaped(model)): " + (report.isValid
                ? "valid (format \(report.formatVersion), \(report.tensorCount) tensors, \(report.checkedByteCount) payload bytes checked)"
                : "INVALID: \(report.problems.count) problem\(report.problems.count == 1 ? "" : "s")"))
        }
        if !report.isValid { throw ExitCode(1) }
    }

    struct Output: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var file: String
        var valid: Bool
        var formatVersion: String
        var tensorCount: Int
        var checkedByteCount: UInt64
        var problems: [VerificationProblem]

        init(report: VerificationReport) {
            file = report.file
            valid = report.isValid
            formatVersion = report.formatVersion
            tensorCount = report.tensorCount
            checkedByteCount = report.checkedByteCount
            problems = report.problems
        }
    }

    /// `--json` output when the file cannot be opened (exit 2): still one document.
    struct Unreadable: Encodable {
        var schemaVersion = Terminal.jsonSchemaVersion
        var file: String
        var valid = false
        var readable = false
        var error: String
    }
}

extension VerifyCommand: PlannableCommand {
    func plan(_ arguments: [String], planPath: String) throws -> TaskPlan {
        try TaskPlan.verify(command: arguments, root: limits.open(model), planPath: planPath)
    }

    func runTask(_ plan: TaskPlan, index: Int) throws -> TaskResult {
        try plan.runVerify(verifier, index: index)
    }

    func finish(_ plan: TaskPlan) throws {
        try conclude(plan.finishVerify(verifier, root: limits.open(model)))
    }
}

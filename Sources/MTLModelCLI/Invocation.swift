/// The command being run, as a user would type it: what a written file records as its
/// provenance source ("every flag"). A planned command's tasks and finish record the planned
/// command, so every file of a plan records what the single process would.
enum Invocation {
    /// Set once, before the command runs (single-threaded then).
    nonisolated(unsafe) static var arguments: [String] = []

    /// `mtl-model ARGS…`, each argument quoted for a POSIX shell when it needs it.
    static var commandLine: String {
        (["mtl-model"] + arguments.map(quoted)).joined(separator: " ")
    }

    private static func quoted(_ argument: String) -> String {
        let plain = !argument.isEmpty && argument.unicodeScalars.allSatisfy {
            ($0.value < 128 && ($0.properties.isAlphabetic || ("0"..."9").contains(Character($0)))) || "-_./=:,+@%".unicodeScalars.contains($0)
        }
        return plain ? argument : "'" + argument.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }
}

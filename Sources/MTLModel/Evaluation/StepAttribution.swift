import Foundation

/// A rewrite taken apart (`convert --eval`, `quantize --eval`): each of its steps — folding
/// batch norm, pruning unseen rows, quantizing one table, quantizing the dense layers — applied
/// alone to the input and scored against it on the same samples (paired), so that a failed
/// gate names the step that failed it.
///
/// Each step's model is written beside the output under a hidden name
/// (`.NAME.step-K.mtlm`, itself written through a temporary file), scored, and removed before the
/// next is written: the disk holds one such model at a time, and a killed run's is removed by
/// the next run of the same command.
public struct StepAttribution: Sendable, Codable {
    public struct Step: Sendable, Codable {
        /// "fold batch norm", "prune unseen rows", "quantize table item_id (int8)", …
        public var name: String
        public var comparison: QualityComparison
        /// The gate's limits this step alone exceeds, in words.
        public var failures: [String]
    }

    public var steps: [Step]

    /// A step: its name, and how to write the input with it alone into a pending output.
    public struct Variant: @unchecked Sendable {
        public let name: String
        let write: (PendingOutput) throws -> Void

        /// `@unchecked Sendable`: the closure captures the command's immutable options and the
        /// checked (read-only) model, and runs on the caller's thread.
        init(_ name: String, write: @escaping (PendingOutput) throws -> Void) {
            self.name = name
            self.write = write
        }
    }

    /// Scores each of `variants` against the input (`reference`) on `gate`'s data.
    ///
    /// - Parameter output: the command's output, beside which each step's model is written.
    static func measure(_ reference: ReferenceScores, variants: [Variant], beside output: String, gate: QualityGate) throws -> StepAttribution {
        guard let data = gate.data else { return StepAttribution(steps: []) }
        let directory = (output as NSString).deletingLastPathComponent
        let name = (output as NSString).lastPathComponent
        return StepAttribution(steps: try variants.enumerated().map { index, variant in
            let scratch = (directory.isEmpty ? "" : directory + "/") + ".\(name).step-\(index + 1).mtlm"
            let pending = try PendingOutput(target: scratch)
            try variant.write(pending)
            let comparison = try QualityComparison.compare(reference, try Model(path: pending.path), data: data, threadCount: gate.threadCount)
            return Step(name: variant.name, comparison: comparison, failures: gate.failures(comparison))
        })
    }
}

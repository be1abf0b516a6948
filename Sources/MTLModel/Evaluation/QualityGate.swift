/// The accuracy gate of the commands that rewrite a model (`quantize`, `convert`): both models
/// score the data, and the rewritten one is moved into place only if no task lost more AUC, or
/// gained more logloss, than allowed.
public struct QualityGate: Sendable {
    /// The labelled dataset both models score; nil: no evaluation, and nothing to gate on.
    public var data: String?
    public var maxAUCDrop: Double?
    public var maxLoglossIncrease: Double?
    public var threadCount: Int

    public init(data: String?, maxAUCDrop: Double? = nil, maxLoglossIncrease: Double? = nil, threadCount: Int = 1) {
        self.data = data
        self.maxAUCDrop = maxAUCDrop
        self.maxLoglossIncrease = maxLoglossIncrease
        self.threadCount = max(1, threadCount)
    }

    /// Whether the gate passed, and each limit that was exceeded.
    public struct Verdict: Sendable, Codable, Hashable {
        public var passed: Bool
        public var failures: [String]
    }

    public struct Outcome: Sendable {
        public var comparison: QualityComparison?
        /// Each step of the rewrite alone, when it has more than one (`StepAttribution`).
        public var attribution: StepAttribution?
        /// nil when no limit was set.
        public var verdict: Verdict?
        public var passed: Bool { verdict?.passed ?? true }
    }

    /// Compares `before` with the model written at `pending` (when there is data), and moves
    /// `pending` into place unless a limit is exceeded; otherwise nothing stays at the target.
    /// With data and more than one step, each step alone is scored too (`StepAttribution`).
    public func check(_ before: Model, against pending: PendingOutput, steps: [StepAttribution.Variant] = []) throws -> Outcome {
        var outcome = Outcome()
        if let data {
            // The input's predictions are computed once, for every comparison.
            let reference = ReferenceScores(before, recording: steps.count > 1)
            outcome.comparison = try QualityComparison.compare(reference, try Model(path: pending.path), data: data, threadCount: threadCount)
            if steps.count > 1 {
                outcome.attribution = try StepAttribution.measure(reference, variants: steps, beside: pending.target, gate: self)
            }
        }
        let failures = outcome.comparison.map(failures) ?? []
        if maxAUCDrop != nil || maxLoglossIncrease != nil { outcome.verdict = Verdict(passed: failures.isEmpty, failures: failures) }
        if failures.isEmpty { try pending.commit() }
        return outcome
    }

    /// Each task whose AUC dropped or logloss grew beyond its limit, in words.
    public func failures(_ comparison: QualityComparison) -> [String] {
        var failures: [String] = []
        for task in comparison.tasks {
            if let limit = maxAUCDrop, let before = task.before.auc, let after = task.after.auc, before - after > limit {
                failures.append("\(task.task): AUC dropped by \(Self.number(before - after)) > \(Self.number(limit))")
            }
            if let limit = maxLoglossIncrease, let delta = task.deltaLogloss, delta > limit {
                failures.append("\(task.task): logloss grew by \(Self.number(delta)) > \(Self.number(limit))")
            }
        }
        return failures
    }

    private static func number(_ value: Double) -> String { String(format: "%.6g", value) }
}

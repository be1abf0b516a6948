import Foundation

extension Architecture.LossWeighting {
    /// MODEL.md's convention for uncertainty weighting, used when a checkpoint records none.
    static let defaultConvention = "exp(-s)*L+s"

    /// The per-task loss weights that log-variances `s` imply under `convention`: the factor
    /// of each task's loss, `exp(-s)` (or `0.5·exp(-s)` for `0.5*exp(-s)*L+0.5*s`).
    static func weights(logVariances: [Double], convention: String) -> [Double] {
        let factor = convention == "0.5*exp(-s)*L+0.5*s" ? 0.5 : 1.0
        return logVariances.map { factor * exp(-$0) }
    }

    /// This section frozen at the log-variances `values` (nil: keep the recorded values), with
    /// the weights they imply. Only uncertainty weighting learns log-variances: a `fixed` or
    /// `none` section is only marked frozen.
    func frozen(at values: [Double]?) -> Self {
        var section = self
        if let values, weighting == "uncertainty" {
            if section.parameterization.isEmpty { section.parameterization = "log_var" }
            section.values = values
        }
        if section.weighting == "uncertainty" {
            if section.convention.isEmpty { section.convention = Self.defaultConvention }
            if !section.values.isEmpty {
                section.weights = Self.weights(logVariances: section.values, convention: section.convention)
            }
        }
        section.frozen = true
        return section
    }
}

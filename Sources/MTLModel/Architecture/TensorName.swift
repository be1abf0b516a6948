/// A dense block: the shared bottom, or one task's tower.
public enum DenseBlock: Hashable, Sendable {
    case shared
    case tower(String)

    var prefix: String {
        switch self {
        case .shared: "shared"
        case .tower(let task): "tower.\(task)"
        }
    }
}

/// One tensor of a dense layer `{block}.{index}.{parameter}`.
public enum DenseParameter: String, Hashable, Sendable, CaseIterable {
    case weight, bias
    case bnWeight = "bn.weight", bnBias = "bn.bias", bnRunningMean = "bn.running_mean", bnRunningVar = "bn.running_var"
}

/// The name of a tensor of MODEL.md: the one place that prints and parses them, so that no
/// other code builds a tensor name from strings (the idea of gguf-py's `constants.py`).
///
/// Field, group and task names hold no `.` (`Architecture.isValidName`), so the printed form
/// parses back unambiguously.
public indirect enum TensorName: Hashable, Sendable, CustomStringConvertible {
    /// `embedding.{field}.weight`
    case embedding(String)
    /// `embedding.{field}.keys`
    case keys(String)
    /// `linear.{field}.weight`
    case linear(String)
    /// `linear.bias`
    case linearBias
    /// `interaction.pair_weight`, `interaction.intra_weight`, `interaction.field_bias`
    case pairWeight, intraWeight, fieldBias
    /// `shared.{i}.{parameter}`, `tower.{task}.{i}.{parameter}`
    case dense(DenseBlock, Int, DenseParameter)
    /// `head.{task}.weight`, `head.{task}.bias`
    case headWeight(String), headBias(String)
    /// `optimizer.{parameter}.{slot}`
    case optimizerSlot(TensorName, String)
    /// `optimizer.step`
    case optimizerStep
    /// `loss.log_var`
    case lossLogVar
    /// `stats.{field}.count`
    case rowCount(String)

    public var description: String {
        switch self {
        case .embedding(let field): "embedding.\(field).weight"
        case .keys(let field): "embedding.\(field).keys"
        case .linear(let field): "linear.\(field).weight"
        case .linearBias: "linear.bias"
        case .pairWeight: "interaction.pair_weight"
        case .intraWeight: "interaction.intra_weight"
        case .fieldBias: "interaction.field_bias"
        case .dense(let block, let index, let parameter): "\(block.prefix).\(index).\(parameter.rawValue)"
        case .headWeight(let task): "head.\(task).weight"
        case .headBias(let task): "head.\(task).bias"
        case .optimizerSlot(let parameter, let slot): "optimizer.\(parameter).\(slot)"
        case .optimizerStep: "optimizer.step"
        case .lossLogVar: "loss.log_var"
        case .rowCount(let field): "stats.\(field).count"
        }
    }

    /// Parses a MODEL.md name; nil for any other string.
    public init?(_ text: String) {
        if text.hasPrefix("optimizer."), text != "optimizer.step" {
            guard let dot = text.lastIndex(of: "."), let parameter = TensorName(String(text[text.index(text.startIndex, offsetBy: 10)..<dot])),
                  case let slot = String(text[text.index(after: dot)...]), !slot.isEmpty, parameter.isParameterName else { return nil }
            self = .optimizerSlot(parameter, slot)
            return
        }
        let parts = text.split(separator: ".", omittingEmptySubsequences: false).map(String.init)
        switch parts.count {
        case 2:
            switch text {
            case "linear.bias": self = .linearBias
            case "interaction.pair_weight": self = .pairWeight
            case "interaction.intra_weight": self = .intraWeight
            case "interaction.field_bias": self = .fieldBias
            case "optimizer.step": self = .optimizerStep
            case "loss.log_var": self = .lossLogVar
            default: return nil
            }
            return
        case 3:
            let name = parts[1]
            guard Architecture.isValidName(name) else {
                guard parts[0] == "shared", let parsed = Self.dense(.shared, parts[1...]) else { return nil }
                self = parsed
                return
            }
            switch (parts[0], parts[2]) {
            case ("embedding", "weight"): self = .embedding(name)
            case ("embedding", "keys"): self = .keys(name)
            case ("linear", "weight"): self = .linear(name)
            case ("head", "weight"): self = .headWeight(name)
            case ("head", "bias"): self = .headBias(name)
            case ("stats", "count"): self = .rowCount(name)
            case ("shared", _):
                guard let parsed = Self.dense(.shared, parts[1...]) else { return nil }
                self = parsed
            default: return nil
            }
        default:
            if parts[0] == "shared", let parsed = Self.dense(.shared, parts[1...]) {
                self = parsed
            } else if parts[0] == "tower", parts.count >= 4, Architecture.isValidName(parts[1]),
                      let parsed = Self.dense(.tower(parts[1]), parts[2...]) {
                self = parsed
            } else {
                return nil
            }
        }
    }

    /// `{index}.{parameter}` after a block's prefix.
    private static func dense(_ block: DenseBlock, _ rest: ArraySlice<String>) -> TensorName? {
        guard let first = rest.first, let index = Int(first), index >= 0, String(index) == first,
              let parameter = DenseParameter(rawValue: rest.dropFirst().joined(separator: ".")) else { return nil }
        return .dense(block, index, parameter)
    }

    /// Whether an optimizer may hold slots for this tensor (a trainable parameter's name).
    var isParameterName: Bool {
        switch self {
        case .keys, .optimizerSlot, .optimizerStep, .lossLogVar, .rowCount: false
        case .dense(_, _, let parameter): parameter != .bnRunningMean && parameter != .bnRunningVar
        default: true
        }
    }

    /// The part of a model this tensor counts in (`inspect`, sizes by section).
    public var section: ModelSection {
        switch self {
        case .embedding, .keys: .embeddings
        case .linear, .linearBias: .linear
        case .pairWeight, .intraWeight, .fieldBias: .interaction
        case .dense, .headWeight, .headBias: .dense
        case .optimizerSlot, .optimizerStep, .lossLogVar, .rowCount: .trainingState
        }
    }

    /// The field whose table this tensor is or belongs to (its rows are the table's rows).
    /// A dense layer's or a head's weight or bias (what folding batch norm changes).
    public var isDenseLayerParameter: Bool {
        switch self {
        case .dense(_, _, .weight), .dense(_, _, .bias), .headWeight, .headBias: true
        default: false
        }
    }

    public var tableField: String? {
        switch self {
        case .embedding(let field), .keys(let field), .linear(let field), .rowCount(let field): field
        case .optimizerSlot(let parameter, _): parameter.tableField
        default: nil
        }
    }
}

/// Names of the tensors of a delta file (format 1.2), built from the new model's names.
enum DeltaTensorName {
    static func rows(_ name: String) -> String { "delta.rows.\(name)" }
    static func values(_ name: String) -> String { "delta.values.\(name)" }

    /// The new model's tensor that a patch tensor (`delta.rows.x`, `delta.values.x`) patches.
    static func patched(_ name: String) -> String? {
        for prefix in ["delta.rows.", "delta.values."] where name.hasPrefix(prefix) { return String(name.dropFirst(prefix.count)) }
        return nil
    }
}

import ArgumentParser
import MTLModel

/// The dtype options of `quantize` and `convert --to serving`. Unset options keep each tensor's
/// dtype; `quantize` gives them its defaults (int8 tables, fp16 dense layers).
struct QuantizationOptions: ParsableArguments {
    @Option(help: "Embedding and first-order tables: fp32, fp16, bf16, int8 or int4 (quantize: default int8).")
    var embeddings: String?

    @Option(help: "Dense weights (shared layers, towers, heads): fp32, fp16, bf16 or int8 (quantize: default fp16).")
    var dense: String?

    @Option(name: .customLong("field"), help: "Per-field table type NAME=TYPE, overriding --embeddings (repeatable).")
    var fields: [String] = []

    var isEmpty: Bool { embeddings == nil && dense == nil && fields.isEmpty }

    /// The plan these options ask for, unset options taking the given defaults.
    func plan(embeddings defaultEmbeddings: DType? = nil, dense defaultDense: DType? = nil) throws -> QuantizationPlan {
        var embeddingType = defaultEmbeddings
        if let embeddings {
            guard let type = QuantizationPlan.embeddingType(named: embeddings) else {
                throw ValidationError("--embeddings must be fp32, fp16, bf16, int8 or int4, got '\(embeddings)'")
            }
            embeddingType = type
        }
        var denseType = defaultDense
        if let dense {
            guard let type = QuantizationPlan.denseType(named: dense) else {
                throw ValidationError("--dense must be fp32, fp16, bf16 or int8, got '\(dense)'")
            }
            denseType = type
        }
        var overrides: [String: DType] = [:]
        for item in fields {
            let parts = item.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let type = QuantizationPlan.embeddingType(named: parts[1]) else {
                throw ValidationError("--field takes NAME=TYPE with TYPE fp32, fp16, bf16, int8 or int4, got '\(item)'")
            }
            overrides[parts[0]] = type
        }
        return QuantizationPlan(embeddings: embeddingType, dense: denseType, fields: overrides)
    }
}

extension Architecture {
    /// The architecture in words, one line per item, for human output.
    public var descriptionLines: [String] {
        func layers(_ list: [DenseLayer]) -> String {
            guard !list.isEmpty else { return "(none)" }
            return list.map { "\($0.units) \($0.activation.configName)\($0.batchNorm ? "+bn" : "")" }.joined(separator: " → ")
        }
        var lines: [String] = []
        lines.append("embedding dim \(embeddingDim); \(fields.count) fields in \(groups.count) groups\(groupsListed ? "" : " (one per field)")")
        for field in fields {
            lines.append("  field \(field.name): vocab \(field.vocabSize), \(field.mapping.configName), \(field.combiner.configName), group \(groups[field.group])")
        }
        var flags: [String] = []
        if interaction.intra { flags.append("intra (dice scale \(interaction.diceScale))") }
        if interaction.halfFactor { flags.append("half factor") }
        if interaction.fieldBias { flags.append("field bias") }
        lines.append("interaction: \(pairCount) group pairs\(flags.isEmpty ? "" : ", " + flags.joined(separator: ", "))")
        lines.append("first-order term: \(linear ? "yes" : "no")")
        lines.append("bottom input: \(bottomInput.configName) (width \(bottomInputWidth)); layer order \(layerOrder.configName), bn eps \(bnEps)")
        lines.append("shared: \(layers(shared))")
        for task in tasks {
            var extras: [String] = []
            if task.useLinear { extras.append("+ linear") }
            if task.logitOffset != 0 { extras.append("logit offset \(task.logitOffset)") }
            lines.append("task \(task.name): tower \(layers(task.tower)) → head\(extras.isEmpty ? "" : " " + extras.joined(separator: ", "))")
        }
        switch fusion.type {
        case .lexicographic: lines.append("fusion: lexicographic, bucket \(fusion.bucket)")
        case .weightedSum: lines.append("fusion: weighted sum, weights \(fusion.weights)")
        case .weightedProduct: lines.append("fusion: weighted product, weights \(fusion.weights), biases \(fusion.biases), exponents \(fusion.exponents)")
        }
        if let loss {
            var text = "loss weighting: \(loss.weighting)"
            if !loss.parameterization.isEmpty { text += ", \(loss.parameterization)" }
            if !loss.convention.isEmpty { text += ", \(loss.convention)" }
            text += loss.frozen ? ", frozen" : ", learned"
            if !loss.values.isEmpty { text += ", values \(loss.values)" }
            if !loss.weights.isEmpty { text += ", weights \(loss.weights)" }
            lines.append(text)
        }
        if let reweight {
            lines.append("reweighting: \(reweight.scheme)" + reweight.parameters.map { ", \($0.name) \($0.value)" }.joined())
        }
        if let optimizer {
            lines.append("optimizer: \(optimizer.type.configName)" + optimizer.parameters.map { ", \($0.name) \($0.value)" }.joined())
        }
        return lines
    }
}

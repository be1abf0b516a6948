extension Architecture {
    /// Widest dense layer and largest embedding dimension accepted (keeps every shape product
    /// far from overflow and every allocation plausible).
    static let maxWidth = 1 << 20
    /// Largest vocabulary of one field (2^40 rows).
    static let maxVocabSize = 1 << 40
    static let maxNameByteCount = 256

    static let lossWeightings = ["none", "fixed", "uncertainty"]
    static let lossParameterizations = ["", "log_var"]
    static let lossConventions = ["", "exp(-s)*L+s", "0.5*exp(-s)*L+0.5*s"]

    /// Checks every rule of MODEL.md that a parsed or decoded architecture must satisfy.
    ///
    /// - Throws: `.invalidConfig` naming the config key path of the first violation.
    public func validate() throws(MTLModelError) {
        guard (1...Self.maxWidth).contains(embeddingDim) else {
            throw .config("embedding_dim", "must be in 1...\(Self.maxWidth), found \(embeddingDim)")
        }
        guard !fields.isEmpty else { throw .config("fields", "at least one field is required") }
        guard !groups.isEmpty else { throw .config("groups", "at least one group is required") }
        try Self.checkNames(fields.map(\.name), path: "fields", suffix: ".name")
        try Self.checkNames(groups, path: "groups")
        for (index, field) in fields.enumerated() {
            guard (1...Self.maxVocabSize).contains(field.vocabSize) else {
                throw .config("fields[\(index)].vocab_size", "must be in 1...\(Self.maxVocabSize), found \(field.vocabSize)")
            }
            guard groups.indices.contains(field.group) else {
                throw .config("fields[\(index)].group", "group index \(field.group) is not in the groups list")
            }
        }
        if !groupsListed {
            guard groups == fields.map(\.name) else {
                throw .config("groups", "without a groups list every field must be its own group, in field order")
            }
        }
        guard interaction.diceScale.isFinite else { throw .config("interaction.dice_scale", "must be finite") }
        guard bnEps.isFinite, bnEps >= 0 else { throw .config("bn_eps", "must be finite and not negative") }
        try Self.checkLayers(shared, path: "shared")
        guard !tasks.isEmpty else { throw .config("tasks", "at least one task is required") }
        try Self.checkNames(tasks.map(\.name), path: "tasks", suffix: ".name")
        for (index, task) in tasks.enumerated() {
            try Self.checkLayers(task.tower, path: "tasks[\(index)].tower")
            guard task.logitOffset.isFinite else { throw .config("tasks[\(index)].logit_offset", "must be finite") }
            if task.useLinear && !linear {
                throw .config("tasks[\(index)].use_linear", "the model has no first-order term (\"linear\": false)")
            }
        }
        try validateFusion()
        try validateTraining()
    }

    private func validateFusion() throws(MTLModelError) {
        let count = tasks.count
        func check(_ values: [Double], _ key: String) throws(MTLModelError) {
            guard values.count == count else { throw .config("fusion.\(key)", "expected \(count) values (one per task), found \(values.count)") }
            guard values.allSatisfy(\.isFinite) else { throw .config("fusion.\(key)", "values must be finite") }
        }
        switch fusion.type {
        case .lexicographic:
            guard count >= 2 else { throw .config("fusion.type", "lexicographic fusion needs at least two tasks") }
            guard fusion.bucket.isFinite, fusion.bucket > 0 else { throw .config("fusion.bucket", "must be a finite number > 0") }
            guard fusion.weights.isEmpty, fusion.biases.isEmpty, fusion.exponents.isEmpty else {
                throw .config("fusion", "lexicographic fusion takes only a bucket")
            }
        case .weightedSum:
            try check(fusion.weights, "weights")
            guard fusion.biases.isEmpty, fusion.exponents.isEmpty, fusion.bucket == 0 else {
                throw .config("fusion", "weighted_sum fusion takes only weights")
            }
        case .weightedProduct:
            try check(fusion.weights, "weights")
            try check(fusion.biases, "biases")
            try check(fusion.exponents, "exponents")
            guard fusion.bucket == 0 else { throw .config("fusion", "weighted_product fusion takes no bucket") }
            for task in 0..<count {
                let bias = fusion.biases[task]
                guard bias >= 0, bias + fusion.weights[task] >= 0 else {
                    throw .config("fusion.biases[\(task)]", "the base c + w·p can be negative (c = \(bias), w = \(fusion.weights[task]))")
                }
            }
        }
    }

    private func validateTraining() throws(MTLModelError) {
        if let loss {
            func oneOf(_ value: String, _ allowed: [String], _ key: String) throws(MTLModelError) {
                guard allowed.contains(value) else {
                    throw .config("loss.\(key)", "unknown value \"\(value)\" (expected one of: \(allowed.filter { !$0.isEmpty }.joined(separator: ", ")))")
                }
            }
            try oneOf(loss.weighting, Self.lossWeightings, "weighting")
            try oneOf(loss.parameterization, Self.lossParameterizations, "parameterization")
            try oneOf(loss.convention, Self.lossConventions, "convention")
            for (key, values) in [("values", loss.values), ("weights", loss.weights)] where !values.isEmpty {
                guard values.count == tasks.count else { throw .config("loss.\(key)", "expected \(tasks.count) values (one per task), found \(values.count)") }
                guard values.allSatisfy(\.isFinite) else { throw .config("loss.\(key)", "values must be finite") }
            }
        }
        if let reweight {
            guard !reweight.scheme.isEmpty, reweight.scheme.utf8.count <= Self.maxNameByteCount else {
                throw .config("reweight.scheme", "must be a non-empty string of at most \(Self.maxNameByteCount) bytes")
            }
            try Self.checkParameters(reweight.parameters, path: "reweight")
        }
        if let optimizer {
            try Self.checkParameters(optimizer.parameters, path: "optimizer")
            for parameter in optimizer.parameters where !optimizer.type.parameterNames.contains(parameter.name) {
                throw .config("optimizer.\(parameter.name)", "unknown key for \(optimizer.type.configName) (expected one of: \(optimizer.type.parameterNames.joined(separator: ", ")))")
            }
        }
    }

    private static func checkParameters(_ parameters: [NamedValue], path: String) throws(MTLModelError) {
        var seen = Set<String>()
        for parameter in parameters {
            guard isValidName(parameter.name) else { throw .config(path, "invalid parameter name \"\(parameter.name)\"") }
            guard seen.insert(parameter.name).inserted else { throw .config("\(path).\(parameter.name)", "given twice") }
            guard parameter.value.isFinite else { throw .config("\(path).\(parameter.name)", "must be finite") }
        }
    }

    private static func checkLayers(_ layers: [DenseLayer], path: String) throws(MTLModelError) {
        for (index, layer) in layers.enumerated() where !(1...maxWidth).contains(layer.units) {
            throw .config("\(path)[\(index)].units", "must be in 1...\(maxWidth), found \(layer.units)")
        }
    }

    private static func checkNames(_ names: [String], path: String, suffix: String = "") throws(MTLModelError) {
        var seen = Set<String>()
        for (index, name) in names.enumerated() {
            guard isValidName(name) else {
                throw .config("\(path)[\(index)]\(suffix)", "invalid name \"\(name)\": use 1 to \(maxNameByteCount) letters, digits, '_' or '-'")
            }
            guard seen.insert(name).inserted else {
                throw .config("\(path)[\(index)]\(suffix)", "duplicate name \"\(name)\"")
            }
        }
    }

    /// Names become parts of tensor names (`embedding.{field}.weight`) and dataset tokens
    /// (`field:id`), so they exclude `.`, `:`, spaces and control characters.
    static func isValidName(_ name: String) -> Bool {
        NameRule.isValid(name, limit: maxNameByteCount, allowingDots: false)
    }
}

import Foundation

extension Architecture {
    /// Parses the architecture config JSON of MODEL.md, applying its defaults.
    ///
    /// - Throws: `MTLModelError` with code `.invalidConfig` naming the key path of the first
    ///   problem (an unknown key, a wrong type, a value out of range, an inconsistency).
    public init(configJSON data: Data) throws(MTLModelError) {
        try self.init(config: try JSONValue.parse(data))
    }

    /// A config is a few kilobytes; more than this is not a config (and is not read whole).
    public static let maxConfigFileBytes = 16 << 20

    /// Reads and parses a config JSON file; errors name the file. A pipe works too
    /// (`--config <(…)`): the file is read as a stream, at most `maxConfigFileBytes`.
    public init(configFile path: String) throws(MTLModelError) {
        let data: Data
        do {
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
            defer { try? handle.close() }
            data = try handle.read(upToCount: Self.maxConfigFileBytes + 1) ?? Data()
        } catch {
            throw MTLModelError(.io, "cannot read the config: \(error.localizedDescription)", file: path)
        }
        guard data.count <= Self.maxConfigFileBytes else {
            throw MTLModelError(.invalidConfig, "more than \(Self.maxConfigFileBytes >> 20) MiB: not an architecture config", file: path)
        }
        do {
            try self.init(configJSON: data)
        } catch {
            throw error.inFile(path)
        }
    }

    public init(config: JSONValue) throws(MTLModelError) {
        var top = try ConfigObject(config, path: "")
        let embeddingDim = try top.int("embedding_dim", default: nil, range: 1...Architecture.maxWidth)
        var (groups, groupsListed) = try Self.groups(&top)
        let fields = try Self.fields(&top, groups: &groups, listed: groupsListed)
        let interaction = try Self.interaction(&top)
        let linear = try top.bool("linear", default: false)
        let bottomInput: BottomInput = try top.choice("bottom_input", default: .interaction)
        let layerOrder: LayerOrder = try top.choice("layer_order", default: .linearBnAct)
        let bnEps = try top.double("bn_eps", default: 1e-5)
        let shared = try Self.denseLayers(try top.list("shared") ?? [], path: "shared")
        let tasks = try Self.tasks(&top)
        let fusion = try Self.fusion(&top, taskCount: tasks.count)
        let loss = try Self.loss(&top, taskCount: tasks.count)
        let reweight = try Self.reweight(&top)
        let optimizer = try Self.optimizer(&top)
        try top.rejectUnknownKeys()

        self.init(embeddingDim: embeddingDim, groups: groups, groupsListed: groupsListed, fields: fields,
                  interaction: interaction, linear: linear, bottomInput: bottomInput, layerOrder: layerOrder,
                  bnEps: bnEps, shared: shared, tasks: tasks, fusion: fusion, loss: loss,
                  reweight: reweight, optimizer: optimizer)
        try validate()
    }

    /// The `groups` list, and whether the config has one.
    private static func groups(_ top: inout ConfigObject) throws(MTLModelError) -> ([String], listed: Bool) {
        guard let items = try top.list("groups") else { return ([], false) }
        var groups: [String] = []
        for (index, item) in items.enumerated() {
            guard case .string(let name) = item else {
                throw .config("groups[\(index)]", "expected a string, found \(item.typeName)")
            }
            groups.append(name)
        }
        return (groups, true)
    }

    /// The `fields`; without a groups list each field is its own group (MODEL.md), appended to
    /// `groups`.
    private static func fields(_ top: inout ConfigObject, groups: inout [String], listed: Bool) throws(MTLModelError) -> [Field] {
        guard let items = try top.list("fields") else { throw top.missing("fields") }
        var fields: [Field] = []
        for (index, item) in items.enumerated() {
            var object = try ConfigObject(item, path: "fields[\(index)]")
            let name = try object.string("name", default: nil)
            let vocabSize = try object.int("vocab_size", default: nil, range: 1...Architecture.maxVocabSize)
            let mapping: Mapping = try object.choice("mapping", default: .modulo)
            let combiner: Combiner = try object.choice("combiner", default: .sum)
            let groupName = try object.string("group", default: name)
            try object.rejectUnknownKeys()
            let group: Int
            if listed {
                guard let position = groups.firstIndex(of: groupName) else {
                    throw .config(object.keyPath("group"), "group \"\(groupName)\" is not in the groups list")
                }
                group = position
            } else {
                guard groupName == name else {
                    throw .config(object.keyPath("group"), "group \"\(groupName)\" is not listed (the config has no groups list)")
                }
                groups.append(name)
                group = groups.count - 1
            }
            fields.append(Field(name: name, vocabSize: vocabSize, mapping: mapping, combiner: combiner, group: group))
        }
        return fields
    }

    private static func interaction(_ top: inout ConfigObject) throws(MTLModelError) -> Interaction {
        var interaction = Interaction()
        guard let value = top.value("interaction") else { return interaction }
        var object = try ConfigObject(value, path: "interaction")
        interaction.intra = try object.bool("intra", default: false)
        interaction.halfFactor = try object.bool("half_factor", default: false)
        interaction.fieldBias = try object.bool("field_bias", default: false)
        interaction.diceScale = try object.double("dice_scale", default: 1)
        try object.rejectUnknownKeys()
        return interaction
    }

    private static func tasks(_ top: inout ConfigObject) throws(MTLModelError) -> [Task] {
        guard let items = try top.list("tasks") else { throw top.missing("tasks") }
        var tasks: [Task] = []
        for (index, item) in items.enumerated() {
            var object = try ConfigObject(item, path: "tasks[\(index)]")
            let name = try object.string("name", default: nil)
            let tower = try Self.denseLayers(try object.list("tower") ?? [], path: object.keyPath("tower"))
            let useLinear = try object.bool("use_linear", default: false)
            let logitOffset = try object.double("logit_offset", default: 0)
            try object.rejectUnknownKeys()
            tasks.append(Task(name: name, tower: tower, useLinear: useLinear, logitOffset: logitOffset))
        }
        return tasks
    }

    /// The `fusion` section (default: the weighted sum of every task with weight 1).
    private static func fusion(_ top: inout ConfigObject, taskCount: Int) throws(MTLModelError) -> Fusion {
        var fusion = Fusion(type: .weightedSum, weights: Array(repeating: 1, count: taskCount))
        guard let value = top.value("fusion") else { return fusion }
        var object = try ConfigObject(value, path: "fusion")
        fusion.type = try object.choice("type", default: .weightedSum)
        switch fusion.type {
        case .lexicographic:
            fusion.bucket = try object.double("bucket", default: nil)
            fusion.weights = []
        case .weightedSum:
            fusion.weights = try object.numbers("weights", count: taskCount) ?? Array(repeating: 1, count: taskCount)
        case .weightedProduct:
            fusion.weights = try object.numbers("weights", count: taskCount) ?? Array(repeating: 1, count: taskCount)
            fusion.biases = try object.numbers("biases", count: taskCount) ?? Array(repeating: 0, count: taskCount)
            fusion.exponents = try object.numbers("exponents", count: taskCount) ?? Array(repeating: 1, count: taskCount)
        }
        try object.rejectUnknownKeys()
        return fusion
    }

    private static func loss(_ top: inout ConfigObject, taskCount: Int) throws(MTLModelError) -> LossWeighting? {
        guard let value = top.value("loss") else { return nil }
        var object = try ConfigObject(value, path: "loss")
        var section = LossWeighting(weighting: try object.string("weighting", default: nil))
        section.parameterization = try object.string("parameterization", default: "")
        section.convention = try object.string("convention", default: "")
        section.frozen = try object.bool("frozen", default: false)
        section.values = try object.numbers("values", count: taskCount) ?? []
        section.weights = try object.numbers("weights", count: taskCount) ?? []
        try object.rejectUnknownKeys()
        return section
    }

    private static func reweight(_ top: inout ConfigObject) throws(MTLModelError) -> Reweight? {
        guard let value = top.value("reweight") else { return nil }
        var object = try ConfigObject(value, path: "reweight")
        let scheme = try object.string("scheme", default: nil)
        // Scheme parameters are scheme-specific: every other key must be a number.
        var parameters: [NamedValue] = []
        for key in object.unreadKeys {
            parameters.append(NamedValue(name: key, value: try object.double(key, default: nil)))
        }
        return Reweight(scheme: scheme, parameters: parameters)
    }

    private static func optimizer(_ top: inout ConfigObject) throws(MTLModelError) -> Optimizer? {
        guard let value = top.value("optimizer") else { return nil }
        var object = try ConfigObject(value, path: "optimizer")
        let type: OptimizerType = try object.choice("type", default: .adagrad)
        if object.value("type") == nil { throw .config("optimizer.type", "missing (required)") }
        var parameters: [NamedValue] = []
        for key in type.parameterNames where object.value(key) != nil {
            parameters.append(NamedValue(name: key, value: try object.double(key, default: nil)))
        }
        try object.rejectUnknownKeys(allowed: ["type"] + type.parameterNames)
        return Optimizer(type: type, parameters: parameters)
    }

    private static func denseLayers(_ items: [JSONValue], path: String) throws(MTLModelError) -> [DenseLayer] {
        var layers: [DenseLayer] = []
        for (index, item) in items.enumerated() {
            var object = try ConfigObject(item, path: "\(path)[\(index)]")
            let units = try object.int("units", default: nil, range: 1...Architecture.maxWidth)
            let activation: Activation = try object.choice("activation", default: .relu)
            let batchNorm = try object.bool("batch_norm", default: false)
            try object.rejectUnknownKeys()
            layers.append(DenseLayer(units: units, activation: activation, batchNorm: batchNorm))
        }
        return layers
    }

    /// The config as JSON, every default explicit; parsing it gives back this architecture.
    public var config: JSONValue {
        func dense(_ layers: [DenseLayer]) -> JSONValue {
            .array(layers.map { layer in
                .object(["units": .number(Double(layer.units)),
                         "activation": .string(layer.activation.configName),
                         "batch_norm": .bool(layer.batchNorm)])
            })
        }
        func numbers(_ values: [Double]) -> JSONValue { .array(values.map { .number($0) }) }

        var top: [String: JSONValue] = [
            "embedding_dim": .number(Double(embeddingDim)),
            "fields": .array(fields.map { field in
                .object(["name": .string(field.name), "vocab_size": .number(Double(field.vocabSize)),
                         "mapping": .string(field.mapping.configName), "combiner": .string(field.combiner.configName),
                         "group": .string(groups[field.group])])
            }),
            "interaction": .object(["intra": .bool(interaction.intra), "half_factor": .bool(interaction.halfFactor),
                                    "field_bias": .bool(interaction.fieldBias), "dice_scale": .number(interaction.diceScale)]),
            "linear": .bool(linear),
            "bottom_input": .string(bottomInput.configName),
            "layer_order": .string(layerOrder.configName),
            "bn_eps": .number(bnEps),
            "shared": dense(shared),
            "tasks": .array(tasks.map { task in
                .object(["name": .string(task.name), "tower": dense(task.tower),
                         "use_linear": .bool(task.useLinear), "logit_offset": .number(task.logitOffset)])
            }),
        ]
        if groupsListed { top["groups"] = .array(groups.map { .string($0) }) }
        var fusionObject: [String: JSONValue] = ["type": .string(fusion.type.configName)]
        switch fusion.type {
        case .lexicographic: fusionObject["bucket"] = .number(fusion.bucket)
        case .weightedSum: fusionObject["weights"] = numbers(fusion.weights)
        case .weightedProduct:
            fusionObject["weights"] = numbers(fusion.weights)
            fusionObject["biases"] = numbers(fusion.biases)
            fusionObject["exponents"] = numbers(fusion.exponents)
        }
        top["fusion"] = .object(fusionObject)
        if let loss {
            var object: [String: JSONValue] = ["weighting": .string(loss.weighting), "frozen": .bool(loss.frozen)]
            if !loss.parameterization.isEmpty { object["parameterization"] = .string(loss.parameterization) }
            if !loss.convention.isEmpty { object["convention"] = .string(loss.convention) }
            if !loss.values.isEmpty { object["values"] = numbers(loss.values) }
            if !loss.weights.isEmpty { object["weights"] = numbers(loss.weights) }
            top["loss"] = .object(object)
        }
        if let reweight {
            var object: [String: JSONValue] = ["scheme": .string(reweight.scheme)]
            for parameter in reweight.parameters { object[parameter.name] = .number(parameter.value) }
            top["reweight"] = .object(object)
        }
        if let optimizer {
            var object: [String: JSONValue] = ["type": .string(optimizer.type.configName)]
            for parameter in optimizer.parameters { object[parameter.name] = .number(parameter.value) }
            top["optimizer"] = .object(object)
        }
        return .object(top)
    }
}

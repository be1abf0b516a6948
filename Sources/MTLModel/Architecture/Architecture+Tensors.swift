/// A tensor that an architecture calls for: its MODEL.md name, dtype, shape and role.
public struct TensorSpec: Sendable, Hashable {
    public var name: String
    public var dtype: DType
    public var shape: [UInt64]
    public var role: TensorRole
    public var section: ModelSection

    public var elementCount: UInt64 { shape.reduce(1, &*) }
}

/// The parts of a model that `inspect` counts separately.
public enum ModelSection: String, Sendable, Hashable, Codable, CaseIterable {
    case embeddings, linear, interaction, dense, trainingState = "training_state"
}

/// The groups of training-state tensors; each is present completely or not at all.
public enum TrainingStateGroup: String, Sendable, Hashable, CaseIterable {
    case optimizerSlots = "optimizer slots"
    case optimizerStep = "optimizer step"
    case lossLogVar = "loss.log_var"
    case rowCounts = "row counts"
}

extension Architecture {
    /// Every tensor of the serving form, in file order: parameters, buffers and keys.
    public var servingTensors: [TensorSpec] {
        var specs: [TensorSpec] = []
        let k = UInt64(embeddingDim)
        for field in fields {
            let rows = UInt64(field.vocabSize)
            specs.append(.init(name: "embedding.\(field.name).weight", dtype: .float32, shape: [rows, k], role: .parameter, section: .embeddings))
            if field.mapping == .keyed {
                specs.append(.init(name: "embedding.\(field.name).keys", dtype: .int64, shape: [rows], role: .keys, section: .embeddings))
            }
        }
        if linear {
            for field in fields {
                specs.append(.init(name: "linear.\(field.name).weight", dtype: .float32, shape: [UInt64(field.vocabSize), 1], role: .parameter, section: .linear))
            }
            specs.append(.init(name: "linear.bias", dtype: .float32, shape: [1], role: .parameter, section: .linear))
        }
        specs.append(.init(name: "interaction.pair_weight", dtype: .float32, shape: [UInt64(pairCount)], role: .parameter, section: .interaction))
        if interaction.intra {
            specs.append(.init(name: "interaction.intra_weight", dtype: .float32, shape: [UInt64(groupCount)], role: .parameter, section: .interaction))
        }
        if interaction.fieldBias {
            specs.append(.init(name: "interaction.field_bias", dtype: .float32, shape: [UInt64(groupCount), k], role: .parameter, section: .interaction))
        }
        var width = bottomInputWidth
        appendDense(shared, prefix: "shared", input: &width, to: &specs)
        let towerInput = width
        for task in tasks {
            var taskWidth = towerInput
            appendDense(task.tower, prefix: "tower.\(task.name)", input: &taskWidth, to: &specs)
            specs.append(.init(name: "head.\(task.name).weight", dtype: .float32, shape: [1, UInt64(taskWidth)], role: .parameter, section: .dense))
            specs.append(.init(name: "head.\(task.name).bias", dtype: .float32, shape: [1], role: .parameter, section: .dense))
        }
        return specs
    }

    private func appendDense(_ layers: [DenseLayer], prefix: String, input: inout Int, to specs: inout [TensorSpec]) {
        for (index, layer) in layers.enumerated() {
            let out = UInt64(layer.units)
            let name = "\(prefix).\(index)"
            specs.append(.init(name: "\(name).weight", dtype: .float32, shape: [out, UInt64(input)], role: .parameter, section: .dense))
            specs.append(.init(name: "\(name).bias", dtype: .float32, shape: [out], role: .parameter, section: .dense))
            if layer.batchNorm {
                specs.append(.init(name: "\(name).bn.weight", dtype: .float32, shape: [out], role: .parameter, section: .dense))
                specs.append(.init(name: "\(name).bn.bias", dtype: .float32, shape: [out], role: .parameter, section: .dense))
                specs.append(.init(name: "\(name).bn.running_mean", dtype: .float32, shape: [out], role: .buffer, section: .dense))
                specs.append(.init(name: "\(name).bn.running_var", dtype: .float32, shape: [out], role: .buffer, section: .dense))
            }
            input = layer.units
        }
    }

    /// The tensors of one training-state group (MODEL.md, "Training state"). Optimizer slots
    /// need an optimizer section; without one that group is empty.
    public func trainingTensors(_ group: TrainingStateGroup) -> [TensorSpec] {
        switch group {
        case .optimizerSlots:
            guard let optimizer else { return [] }
            return servingTensors.filter { $0.role == .parameter }.flatMap { parameter in
                optimizer.type.slots.map { slot in
                    TensorSpec(name: "optimizer.\(parameter.name).\(slot)", dtype: .float32, shape: parameter.shape,
                               role: .optimizerSlot, section: .trainingState)
                }
            }
        case .optimizerStep:
            return [.init(name: "optimizer.step", dtype: .int64, shape: [1], role: .optimizerStep, section: .trainingState)]
        case .lossLogVar:
            return [.init(name: "loss.log_var", dtype: .float32, shape: [UInt64(tasks.count)], role: .lossLogVar, section: .trainingState)]
        case .rowCounts:
            return fields.map { field in
                .init(name: "stats.\(field.name).count", dtype: .int64, shape: [UInt64(field.vocabSize)], role: .rowCount, section: .trainingState)
            }
        }
    }

    /// Serving tensors followed by every training-state group: what `synth --training` writes.
    public var trainingFormTensors: [TensorSpec] {
        servingTensors + TrainingStateGroup.allCases.flatMap { trainingTensors($0) }
    }
}

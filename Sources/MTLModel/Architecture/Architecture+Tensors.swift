/// A tensor that an architecture calls for: its MODEL.md name, dtype, shape and role.
public struct TensorSpec: Sendable, Hashable {
    public var tensorName: TensorName
    public var dtype: DType
    public var shape: [UInt64]
    public var role: TensorRole
    public var section: ModelSection { tensorName.section }

    public var name: String { tensorName.description }
    public var elementCount: UInt64 { shape.reduce(1, &*) }

    init(name: TensorName, dtype: DType, shape: [UInt64], role: TensorRole, section: ModelSection) {
        tensorName = name
        self.dtype = dtype
        self.shape = shape
        self.role = role
        assert(section == name.section, "\(name) is in section \(name.section)")
    }
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
            specs.append(.init(name: .embedding(field.name), dtype: .float32, shape: [rows, k], role: .parameter, section: .embeddings))
            if field.mapping == .keyed {
                specs.append(.init(name: .keys(field.name), dtype: .int64, shape: [rows], role: .keys, section: .embeddings))
            }
        }
        if linear {
            for field in fields {
                specs.append(.init(name: .linear(field.name), dtype: .float32, shape: [UInt64(field.vocabSize), 1], role: .parameter, section: .linear))
            }
            specs.append(.init(name: .linearBias, dtype: .float32, shape: [1], role: .parameter, section: .linear))
        }
        specs.append(.init(name: .pairWeight, dtype: .float32, shape: [UInt64(pairCount)], role: .parameter, section: .interaction))
        if interaction.intra {
            specs.append(.init(name: .intraWeight, dtype: .float32, shape: [UInt64(groupCount)], role: .parameter, section: .interaction))
        }
        if interaction.fieldBias {
            specs.append(.init(name: .fieldBias, dtype: .float32, shape: [UInt64(groupCount), k], role: .parameter, section: .interaction))
        }
        var width = bottomInputWidth
        appendDense(shared, block: .shared, input: &width, to: &specs)
        let towerInput = width
        for task in tasks {
            var taskWidth = towerInput
            appendDense(task.tower, block: .tower(task.name), input: &taskWidth, to: &specs)
            specs.append(.init(name: .headWeight(task.name), dtype: .float32, shape: [1, UInt64(taskWidth)], role: .parameter, section: .dense))
            specs.append(.init(name: .headBias(task.name), dtype: .float32, shape: [1], role: .parameter, section: .dense))
        }
        return specs
    }

    private func appendDense(_ layers: [DenseLayer], block: DenseBlock, input: inout Int, to specs: inout [TensorSpec]) {
        for (index, layer) in layers.enumerated() {
            let out = UInt64(layer.units)
            specs.append(.init(name: .dense(block, index, .weight), dtype: .float32, shape: [out, UInt64(input)], role: .parameter, section: .dense))
            specs.append(.init(name: .dense(block, index, .bias), dtype: .float32, shape: [out], role: .parameter, section: .dense))
            if layer.batchNorm {
                for parameter in [DenseParameter.bnWeight, .bnBias, .bnRunningMean, .bnRunningVar] {
                    let role: TensorRole = parameter == .bnWeight || parameter == .bnBias ? .parameter : .buffer
                    specs.append(.init(name: .dense(block, index, parameter), dtype: .float32, shape: [out], role: role, section: .dense))
                }
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
                    TensorSpec(name: .optimizerSlot(parameter.tensorName, slot), dtype: .float32, shape: parameter.shape,
                               role: .optimizerSlot, section: .trainingState)
                }
            }
        case .optimizerStep:
            return [.init(name: .optimizerStep, dtype: .int64, shape: [1], role: .optimizerStep, section: .trainingState)]
        case .lossLogVar:
            return [.init(name: .lossLogVar, dtype: .float32, shape: [UInt64(tasks.count)], role: .lossLogVar, section: .trainingState)]
        case .rowCounts:
            return fields.map { field in
                .init(name: .rowCount(field.name), dtype: .int64, shape: [UInt64(field.vocabSize)], role: .rowCount, section: .trainingState)
            }
        }
    }

    /// Serving tensors followed by every training-state group: what `synth --training` writes.
    public var trainingFormTensors: [TensorSpec] {
        servingTensors + TrainingStateGroup.allCases.flatMap { trainingTensors($0) }
    }
}

/// Folds inference-mode batch norm into dense layers, so serving runs one affine map per layer.
///
/// With `layer_order` `linear_bn_act` the norm follows the layer's own affine map and folds into
/// it: `W' = diag(s)·W`, `b' = s⊙(b − μ) + β`, with `s = γ / sqrt(σ² + ε)`. With
/// `linear_act_bn` the activation sits between, so the norm (`x ↦ s⊙x + t`, `t = β − s⊙μ`) folds
/// into every layer that reads it instead: `W' = W·diag(s)`, `b' = b + W·t`. For the last shared
/// layer those readers are each task's first tower layer (or head); for a tower's last layer, its
/// head. Computed in double; the new weights are float32 values written in each tensor's dtype.
struct BatchNormFolding {
    /// One folded norm and the layers that absorbed it.
    struct Fold: Sendable, Codable, Hashable {
        var layer: String
        var into: [String]
    }

    /// The architecture without batch norm.
    var architecture: Architecture
    /// New values of every weight and bias that changed, by tensor name.
    var values: [String: [Float]] = [:]
    var folds: [Fold] = []
    /// The batch-norm tensors that are gone.
    var removedTensors: [String] = []

    /// - Parameter floats: the float32 values of a tensor of the model.
    init(_ source: Architecture, floats: (TensorName) throws -> [Float]) throws {
        architecture = source
        // A layer's weights may be rewritten by two folds (its own norm and the norm before it).
        var cache: [TensorName: [Float]] = [:]
        func load(_ name: TensorName) throws -> [Float] {
            if let cached = cache[name] { return cached }
            let loaded = try floats(name)
            cache[name] = loaded
            return loaded
        }
        func rewrite(_ layer: AffineLayer, _ fold: ([Float], [Float]) -> ([Float], [Float])) throws {
            let (weight, bias) = fold(try load(layer.weight), try load(layer.bias))
            (cache[layer.weight], cache[layer.bias]) = (weight, bias)
        }

        for layer in Self.layers(of: source) where layer.batchNorm {
            guard case .dense(let block, let index) = layer.layer else { continue }
            let (scale, shift) = try Self.normAffine(block, index, eps: source.bnEps, load: load)
            let into: [AffineLayer]
            switch source.layerOrder {
            case .linearBnAct:
                into = [layer.layer]
                try rewrite(layer.layer) { Self.scaledOutputs($0, $1, scale: scale, shift: shift) }
            case .linearActBn:
                into = layer.readers
                for reader in into { try rewrite(reader) { Self.absorbedInputs($0, $1, scale: scale, shift: shift) } }
            }
            for reader in into { for name in [reader.weight, reader.bias] { values[name.description] = cache[name] } }
            removedTensors += [DenseParameter.bnWeight, .bnBias, .bnRunningMean, .bnRunningVar].map { TensorName.dense(block, index, $0).description }
            folds.append(Fold(layer: layer.layer.description, into: into.map(\.description)))
        }
        for index in architecture.shared.indices { architecture.shared[index].batchNorm = false }
        for task in architecture.tasks.indices {
            for index in architecture.tasks[task].tower.indices { architecture.tasks[task].tower[index].batchNorm = false }
        }
    }

    /// The norm of a layer as `x ↦ s⊙x + t`: `s = γ / sqrt(σ² + ε)`, `t = β − s⊙μ`.
    static func normAffine(_ block: DenseBlock, _ index: Int, eps: Double,
                           load: (TensorName) throws -> [Float]) throws -> (scale: [Double], shift: [Double]) {
        let gamma = try load(.dense(block, index, .bnWeight)), beta = try load(.dense(block, index, .bnBias))
        let mean = try load(.dense(block, index, .bnRunningMean)), variance = try load(.dense(block, index, .bnRunningVar))
        var scale = [Double](repeating: 0, count: gamma.count), shift = scale
        for o in gamma.indices {
            let denominator = (Double(variance[o]) + eps).squareRoot()
            guard denominator > 0, denominator.isFinite else {
                throw MTLModelError(.invalidArgument, "running_var + bn_eps is \(Double(variance[o]) + eps) at \(o): the norm cannot be folded",
                                    location: .init(tensor: TensorName.dense(block, index, .bnRunningVar).description))
            }
            scale[o] = Double(gamma[o]) / denominator
            shift[o] = Double(beta[o]) - Double(mean[o]) * scale[o]
        }
        return (scale, shift)
    }

    /// `linear_bn_act`: y = s⊙(Wx + b) + t, so each output row of W and the bias are scaled.
    static func scaledOutputs(_ weight: [Float], _ bias: [Float], scale: [Double], shift: [Double]) -> ([Float], [Float]) {
        var weight = weight, bias = bias
        let inputs = weight.count / bias.count
        for o in bias.indices {
            for i in 0..<inputs { weight[o * inputs + i] = Float(Double(weight[o * inputs + i]) * scale[o]) }
            bias[o] = Float(Double(bias[o]) * scale[o] + shift[o])
        }
        return (weight, bias)
    }

    /// `linear_act_bn`: a reader computes W(s⊙x + t) + b = (W·diag(s))x + (b + W·t).
    static func absorbedInputs(_ weight: [Float], _ bias: [Float], scale: [Double], shift: [Double]) -> ([Float], [Float]) {
        var weight = weight, bias = bias
        let inputs = scale.count
        for o in bias.indices {
            var added = 0.0
            for i in 0..<inputs {
                let w = Double(weight[o * inputs + i])
                added += w * shift[i]
                weight[o * inputs + i] = Float(w * scale[i])
            }
            bias[o] = Float(Double(bias[o]) + added)
        }
        return (weight, bias)
    }

    /// An affine map of the model: a dense layer, or a task's head.
    enum AffineLayer: Hashable, CustomStringConvertible {
        case dense(DenseBlock, Int)
        case head(String)

        var weight: TensorName {
            switch self {
            case .dense(let block, let index): .dense(block, index, .weight)
            case .head(let task): .headWeight(task)
            }
        }

        var bias: TensorName {
            switch self {
            case .dense(let block, let index): .dense(block, index, .bias)
            case .head(let task): .headBias(task)
            }
        }

        /// The tensors' common prefix: "shared.0", "head.ctr".
        var description: String {
            let name = weight.description
            return String(name.dropLast(".weight".count))
        }
    }

    /// A dense layer, with the layers (or heads) reading its output.
    struct LayerReference {
        var layer: AffineLayer
        var batchNorm: Bool
        var readers: [AffineLayer]
    }

    /// Every dense layer in forward order: the shared stack, then each task's tower.
    static func layers(of architecture: Architecture) -> [LayerReference] {
        func firstOfTask(_ task: Architecture.Task) -> AffineLayer {
            task.tower.isEmpty ? .head(task.name) : .dense(.tower(task.name), 0)
        }
        var layers: [LayerReference] = []
        for (index, layer) in architecture.shared.enumerated() {
            let readers = index + 1 < architecture.shared.count ? [.dense(.shared, index + 1)] : architecture.tasks.map(firstOfTask)
            layers.append(.init(layer: .dense(.shared, index), batchNorm: layer.batchNorm, readers: readers))
        }
        for task in architecture.tasks {
            for (index, layer) in task.tower.enumerated() {
                let reader: AffineLayer = index + 1 < task.tower.count ? .dense(.tower(task.name), index + 1) : .head(task.name)
                layers.append(.init(layer: .dense(.tower(task.name), index), batchNorm: layer.batchNorm, readers: [reader]))
            }
        }
        return layers
    }
}

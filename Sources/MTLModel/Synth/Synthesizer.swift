import Foundation

/// Writes a model with random weights for an architecture: the fixture, demo and benchmark
/// generator behind `mtl-model synth`. Streams every tensor in fixed-size pieces, so a
/// multi-gigabyte model needs a few MiB of memory.
public struct Synthesizer: Sendable {
    public var seed: UInt64
    /// Add training state: optimizer slots (fresh, as the optimizer initialises them),
    /// `optimizer.step` = 0, `loss.log_var` (the config's loss values, else 0), row counts = 0.
    public var training: Bool
    public var writerOptions: ModelWriter.Options

    public init(seed: UInt64 = 0, training: Bool = false, writerOptions: ModelWriter.Options = .init()) {
        self.seed = seed
        self.training = training
        self.writerOptions = writerOptions
    }

    /// How one tensor is initialised (docs/FORMAT.md has nothing to say: this is the tool's choice,
    /// documented in README's `synth` section).
    enum Fill {
        case uniform(Float, Float)
        case constant(Float)
        case values([Float])
        case distinctKeys
        case zeroInt64
    }

    /// The initial value rule for `spec`: PyTorch-like scales (dense layers U(±1/√in)),
    /// small embeddings, identity batch norm.
    func fill(for spec: TensorSpec, in architecture: Architecture) -> Fill {
        let name = spec.name
        switch spec.role {
        case .keys: return .distinctKeys
        case .optimizerStep, .rowCount: return .zeroInt64
        case .lossLogVar:
            if let values = architecture.loss?.values, !values.isEmpty { return .values(values.map(Float.init)) }
            return .constant(0)
        case .optimizerSlot:
            guard let optimizer = architecture.optimizer else { return .constant(0) }
            return .constant(Float(optimizer.type.initialValue(ofSlot: String(name.split(separator: ".").last!), parameters: optimizer)))
        case .buffer:
            return .constant(name.hasSuffix(".running_var") ? 1 : 0)
        case .parameter:
            if name.hasPrefix("embedding.") { return .uniform(-0.05, 0.05) }
            if name == "linear.bias" { return .constant(0) }
            if name.hasPrefix("linear.") { return .uniform(-0.01, 0.01) }
            if name == "interaction.field_bias" { return .uniform(-0.01, 0.01) }
            if name.hasPrefix("interaction.") { return .uniform(0, 1) }
            if name.hasSuffix(".bn.weight") { return .constant(1) }
            if name.hasSuffix(".bn.bias") { return .constant(0) }
            // Dense weight [out, in] and its bias: PyTorch's nn.Linear default scale.
            let inputs = name.hasSuffix(".weight") ? spec.shape.last ?? 1 : fanIn(ofBias: name, in: architecture)
            let bound = 1 / Float(max(inputs, 1)).squareRoot()
            return .uniform(-bound, bound)
        }
    }

    private func fanIn(ofBias name: String, in architecture: Architecture) -> UInt64 {
        let weightName = String(name.dropLast("bias".count)) + "weight"
        return architecture.servingTensors.first { $0.name == weightName }?.shape.last ?? 1
    }

    /// Writes the model to `path` atomically.
    ///
    /// - Parameter progress: called after each tensor with (bytes written so far, total bytes).
    public func write(_ architecture: Architecture, to path: String, source: String,
                      metadata: [MetadataEntry] = [],
                      progress: (UInt64, UInt64) -> Void = { _, _ in }) throws(MTLModelError) {
        try architecture.validate()
        if training && architecture.optimizer == nil {
            throw MTLModelError(.invalidConfig, "training state needs an optimizer section in the config (its slots depend on it)",
                                location: .init(key: "optimizer"))
        }
        let specs = training ? architecture.trainingFormTensors : architecture.servingTensors
        let total = specs.reduce(UInt64(0)) { $0 &+ $1.dtype.storedByteCount(shape: $1.shape)! }
        let writer = try ModelWriter(path: path, options: writerOptions)
        var done: UInt64 = 0
        for spec in specs {
            try writer.beginTensor(spec.name, dtype: spec.dtype, shape: spec.shape, role: spec.role)
            try stream(fill(for: spec, in: architecture), count: spec.elementCount,
                       seed: seed ^ SplitMix64.hash(spec.name), into: writer)
            try writer.endTensor()
            done &+= spec.dtype.storedByteCount(shape: spec.shape)!
            progress(done, total)
        }
        let provenance = Provenance(createdUnixSeconds: Int64(Date().timeIntervalSince1970), source: source)
        try writer.finish(architecture: architecture, provenance: provenance, metadata: metadata)
    }

    private static let pieceElementCount = 1 << 16

    private func stream(_ fill: Fill, count: UInt64, seed: UInt64, into writer: ModelWriter) throws(MTLModelError) {
        var random = SplitMix64(seed: seed)
        var index: UInt64 = 0
        var floats = [Float](repeating: 0, count: Self.pieceElementCount)
        var integers = [Int64](repeating: 0, count: Self.pieceElementCount)
        while index < count {
            let n = Int(min(UInt64(Self.pieceElementCount), count - index))
            switch fill {
            case .uniform(let low, let high):
                for i in 0..<n { floats[i] = random.nextFloat(low, high) }
            case .constant(let value):
                for i in 0..<n { floats[i] = value }
            case .values(let values):
                for i in 0..<n { floats[i] = values[Int(index) + i] }
            case .distinctKeys:
                // A bijection of the row index: distinct keys spread over the whole 64-bit range.
                for i in 0..<n { integers[i] = Int64(bitPattern: SplitMix64.mix((index + UInt64(i)) &+ seed)) }
            case .zeroInt64:
                for i in 0..<n { integers[i] = 0 }
            }
            switch fill {
            case .distinctKeys, .zeroInt64: try writer.write(integers[..<n])
            default: try writer.write(floats[..<n])
            }
            index += UInt64(n)
        }
    }
}

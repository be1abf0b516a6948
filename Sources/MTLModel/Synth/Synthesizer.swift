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
        switch spec.role {
        case .keys: return .distinctKeys
        case .optimizerStep, .rowCount: return .zeroInt64
        case .lossLogVar:
            if let values = architecture.loss?.values, !values.isEmpty { return .values(values.map(Float.init)) }
            return .constant(0)
        case .optimizerSlot:
            guard let optimizer = architecture.optimizer, case .optimizerSlot(_, let slot) = spec.tensorName else { return .constant(0) }
            return .constant(Float(optimizer.type.initialValue(ofSlot: slot, parameters: optimizer)))
        case .buffer:
            if case .dense(_, _, .bnRunningVar) = spec.tensorName { return .constant(1) }
            return .constant(0)
        case .parameter:
            switch spec.tensorName {
            case .embedding: return .uniform(-0.05, 0.05)
            case .linearBias: return .constant(0)
            case .linear, .fieldBias: return .uniform(-0.01, 0.01)
            case .pairWeight, .intraWeight: return .uniform(0, 1)
            case .dense(_, _, .bnWeight): return .constant(1)
            case .dense(_, _, .bnBias): return .constant(0)
            case .dense(let block, let index, .bias): return Self.linearDefault(fanIn: fanIn(of: .dense(block, index, .weight), in: architecture))
            case .headBias(let task): return Self.linearDefault(fanIn: fanIn(of: .headWeight(task), in: architecture))
            default: return Self.linearDefault(fanIn: spec.shape.last ?? 1)  // a dense weight [out, in]
            }
        }
    }

    /// PyTorch's nn.Linear default: U(±1/√fan_in) for the weight and the bias.
    private static func linearDefault(fanIn: UInt64) -> Fill {
        let bound = 1 / Float(max(fanIn, 1)).squareRoot()
        return .uniform(-bound, bound)
    }

    private func fanIn(of weight: TensorName, in architecture: Architecture) -> UInt64 {
        architecture.servingTensors.first { $0.tensorName == weight }?.shape.last ?? 1
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
